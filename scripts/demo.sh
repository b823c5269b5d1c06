#!/usr/bin/env bash
# The built-in example: the reference scenario's kickstart and TDL, checked
# and rendered the way kiln serves them; then a small installer-like ISO
# (Debian's kernel, isolinux, GRUB for UEFI) remastered with the kickstart
# and booted under QEMU to show the kernel receiving inst.ks=.
set -uo pipefail
cd "$(dirname "$0")/.."
kiln=bin/kiln
out=out/demo
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

# A small installer-like ISO: Debian's kernel, and an initrd whose init
# prints its kernel command line and powers off, where Anaconda would run.
rm -rf "$out" && mkdir -p "$out/tree/isolinux" "$out/tree/images/pxeboot" "$out/initrd/dev"
kernel=$(ls /boot/vmlinuz-* | sort | tail -n 1)
cp "$kernel" "$out/tree/images/pxeboot/vmlinuz"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$out/tree/isolinux/"
CGO_ENABLED=0 go build -o "$out/initrd/init" ./internal/guest/cmdlineinit
mknod "$out/initrd/dev/console" c 5 1
(cd "$out/initrd" && find . | cpio -o -H newc --quiet) > "$out/tree/images/pxeboot/initrd.img"
cat > "$out/tree/isolinux/isolinux.cfg" <<'CFG'
default linux
prompt 0
timeout 600
label linux
  kernel /images/pxeboot/vmlinuz
  append initrd=/images/pxeboot/initrd.img inst.stage2=hd:LABEL=Rocky-9-5-x86_64-dvd console=ttyS0 quiet
CFG
xorriso -as mkisofs -quiet -o "$out/vendor.iso" -V Rocky-9-5-x86_64-dvd -R -J \
  -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin -b isolinux/isolinux.bin -c isolinux/boot.cat \
  -boot-load-size 4 -boot-info-table -no-emul-boot "$out/tree"

step "Remaster the vendor ISO with the kickstart, for bare metal" \
  $kiln iso --ks examples/my-rocky9-fixed.ks --timeout 1 "$out/vendor.iso" "$out/rocky9-install.iso"
step "What is on it now" \
  $kiln iso inspect "$out/rocky9-install.iso"
printf '\n\033[1m== Boot it as a USB stick under SeaBIOS; the kernel must see inst.ks=\033[0m\n'
$kiln -v vm --usb "$out/rocky9-install.iso" --boot usb --memory 512 --timeout 5m 2>&1 | grep -E "KILN-CMDLINE|powered off|warning|error"
