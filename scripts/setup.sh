#!/usr/bin/env bash
# Installs what kiln's build, tests and demo need on Debian 12: the Debian
# packages listed in .ci/packages (only those missing, so a second run is
# quick) and the Go modules. Run as root, or with sudo available.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t want < <(grep -v '^\s*#' "${PACKAGES_FILE:-.ci/packages}" | grep -v '^\s*$')
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Go comes from the machine's own toolchain when it has one.
if command -v go >/dev/null 2>&1; then
  missing=("${missing[@]/golang-go}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  # No service a package brings (nginx) may start: the benchmarks run
  # their own, on loopback.
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  $sudo rm -f /usr/sbin/policy-rc.d
fi
go mod download
