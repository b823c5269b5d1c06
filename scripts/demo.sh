#!/usr/bin/env bash
# The built-in example: the reference scenario, end to end. kiln checks the
# user's kickstart and TDL, then builds disk images and an install ISO from
# a Rocky-like DVD through a self-hosted mirror and file server, exactly as
# it would with Rocky's own; here the DVD carries kiln's test installer
# (integration/, since Anaconda media cannot be downloaded on this
# network), and busybox httpd plays the mirror and the file server.
set -euo pipefail
cd "$(dirname "$0")/.."
kiln=bin/kiln
out=out/demo
step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

printf '\n\033[1m== The user'"'"'s kickstart, checked against RHEL 9 (kiln finds the removed install line)\033[0m\n'
$kiln ks validate examples/my-rocky9.ks || echo "(exit code $?: 3 means invalid input)"
step "The same kickstart with the 'install' line deleted" $kiln ks validate examples/my-rocky9-fixed.ks
step "The user's Oz template" $kiln tdl validate examples/rocky9.tdl

echo
echo "Building the Rocky-like DVD, mirror and installer (cached in .cache/fixtures)..."
fx=$(go run ./integration/cmd/fixtures)
field() { sed -n "s/.*\"$1\": \"\(.*\)\".*/\1/p" <<<"$fx"; }
mirror=$(field Mirror) dvd=$(field DVD)

rm -rf "$out" && mkdir -p "$out"
busybox httpd -f -p 127.0.0.1:18780 -h "$mirror" & m=$!
busybox httpd -f -p 127.0.0.1:18781 -h examples/files & f=$!
trap 'kill $m $f 2>/dev/null' EXIT
sed -e 's#http://your-mirror-server.local#http://127.0.0.1:18780#; s#http://your-file-server.local#http://127.0.0.1:18781#' \
  examples/my-rocky9-fixed.ks > "$out/my-rocky9.ks"

step "Build: qcow2 and raw images, the manifest, and the install ISO for bare metal" \
  $kiln build --ks "$out/my-rocky9.ks" --iso "$dvd" -o "$out/rocky9" --format qcow2,raw \
  --iso-out "$out/rocky9-install.iso" --cache-dir "$out/cache" --memory 1G --disk-size 1G
step "The image holds what the kickstart's %post fetched" debugfs -R "cat /etc/app.conf" "$out/rocky9.raw?offset=1048576"
step "The manifest lists every installed package" sh -c "grep -c '\"name\"' $out/rocky9.manifest.json"
step "A second build costs the mirror nothing" \
  $kiln build --ks "$out/my-rocky9.ks" --iso "$dvd" -o "$out/again" --cache-dir "$out/cache" --memory 1G --disk-size 1G
step "The install ISO kiln wrote, for a USB stick" $kiln iso inspect "$out/rocky9-install.iso"
