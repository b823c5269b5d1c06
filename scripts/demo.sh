#!/usr/bin/env bash
# The built-in example: the reference scenario's kickstart and TDL, checked
# and rendered the way kiln serves them to the installer.
set -uo pipefail
cd "$(dirname "$0")/.."
kiln=bin/kiln
step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "The user's kickstart, checked against RHEL 9 (kiln finds the removed 'install' line)" \
  $kiln ks validate examples/my-rocky9.ks
echo "(exit code $?: 3 means invalid input)"
step "The same kickstart with the 'install' line deleted" \
  $kiln ks validate examples/my-rocky9-fixed.ks
step "The user's Oz template" \
  $kiln tdl validate examples/rocky9.tdl
step "What kiln serves the installer: poweroff added, mirror URLs rewritten to the build's proxy" \
  $kiln ks render --poweroff --set-url http://your-mirror-server.local/=http://10.0.2.2:8080/mirror/ examples/my-rocky9-fixed.ks
