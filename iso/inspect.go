package iso

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/kiln-build/kiln/pkg/fat"
	"github.com/kiln-build/kiln/pkg/treeinfo"
)

// Inspection is what `kiln iso inspect` reports of an image.
type Inspection struct {
	VolumeID     string             `json:"volume_id"`
	SpaceBlocks  uint32             `json:"volume_space_blocks"`
	RockRidge    bool               `json:"rock_ridge"`
	Joliet       bool               `json:"joliet"`
	ElTorito     []BootImage        `json:"el_torito"`
	SystemArea   *SystemArea        `json:"system_area"`
	BootConfigs  []BootConfig       `json:"boot_configs"`
	TreeInfo     *treeinfo.TreeInfo `json:"treeinfo,omitempty"`
	MD5Implanted bool               `json:"md5_implanted"`
}

// BootImage is an El Torito entry with the file it loads.
type BootImage struct {
	Platform  string `json:"platform"` // BIOS or UEFI
	Emulation string `json:"emulation"`
	LoadSize  uint16 `json:"load_size"` // 512-byte sectors
	LoadLBA   uint32 `json:"load_lba"`
	File      string `json:"file,omitempty"` // "" when not a file of the tree (an appended partition)
}

// BootConfig is a boot loader configuration and the kernel command lines
// of its entries.
type BootConfig struct {
	Path     string   `json:"path"`            // in the ISO tree, or inside the EFI image
	Image    string   `json:"image,omitempty"` // the EFI image it is inside, if any
	Cmdlines []string `json:"cmdlines"`
}

// bootConfigPaths are where installer media keep their boot loader
// configurations: everywhere ISOLINUX looks, in its order (syslinux's
// core/fs/iso9660/iso9660.c: the directories /boot/isolinux, /isolinux,
// /boot/syslinux, /syslinux and /, each for isolinux.cfg then
// syslinux.cfg), then GRUB's (lorax's templates and mkksiso's list).
var bootConfigPaths = []string{
	"boot/isolinux/isolinux.cfg", "boot/isolinux/syslinux.cfg", "isolinux/isolinux.cfg", "isolinux/syslinux.cfg",
	"boot/syslinux/isolinux.cfg", "boot/syslinux/syslinux.cfg", "syslinux/isolinux.cfg", "syslinux/syslinux.cfg",
	"isolinux.cfg", "syslinux.cfg",
	"EFI/BOOT/grub.cfg", "EFI/BOOT/BOOT.conf", "boot/grub2/grub.cfg", "boot/grub/grub.cfg",
}

// isSyslinuxConfig tells a syslinux-family configuration from GRUB's.
func isSyslinuxConfig(p string) bool {
	b := path.Base(p)
	return b == "isolinux.cfg" || b == "syslinux.cfg"
}

// Inspect reads everything Inspection reports.
func Inspect(r io.ReaderAt, size int64) (*Inspection, error) {
	ir, err := NewReader(r, size)
	if err != nil {
		return nil, err
	}
	in := &Inspection{VolumeID: ir.PVD.VolumeID, SpaceBlocks: ir.PVD.SpaceSize, RockRidge: ir.RockRidge, Joliet: ir.Joliet != nil,
		MD5Implanted: bytes.Contains(ir.PVD.AppUse, []byte("ISO MD5SUM = "))}
	if in.SystemArea, err = ReadSystemArea(r, size); err != nil {
		return nil, err
	}
	if ir.Catalog != nil {
		for _, e := range ir.Catalog.Entries {
			bi := BootImage{Platform: PlatformName(e.Platform), Emulation: emulation(e.Media), LoadSize: e.SectorCount, LoadLBA: e.LoadRBA}
			if f, err := ir.FileAt(e.LoadRBA); err == nil {
				bi.File = f.Path
			}
			in.ElTorito = append(in.ElTorito, bi)
		}
	}
	for _, p := range bootConfigPaths {
		f, err := ir.Stat(p)
		if err != nil || f.IsDir() {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(f.Open(), 1<<20))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		in.BootConfigs = append(in.BootConfigs, BootConfig{Path: p, Cmdlines: KernelCmdlines(string(data))})
	}
	// The configurations inside each EFI boot image: UEFI firmware that
	// boots the ESP reads these, not the tree's.
	for _, e := range in.ElTorito {
		if e.Platform != "UEFI" {
			continue
		}
		espSize := int64(e.LoadSize) * 512
		if f, err := ir.FileAt(e.LoadLBA); err == nil {
			espSize = f.Size
		}
		if espSize <= 512 {
			espSize = size - int64(e.LoadLBA)*SectorSize
		}
		esp, err := fat.NewReader(io.NewSectionReader(r, int64(e.LoadLBA)*SectorSize, espSize), espSize)
		if err != nil {
			continue
		}
		for _, p := range []string{"EFI/BOOT/grub.cfg", "EFI/BOOT/BOOT.conf"} {
			if data, err := esp.ReadFile(p); err == nil {
				name := e.File
				if name == "" {
					name = fmt.Sprintf("LBA %d", e.LoadLBA)
				}
				in.BootConfigs = append(in.BootConfigs, BootConfig{Path: p, Image: name, Cmdlines: KernelCmdlines(string(data))})
			}
		}
	}
	if f, err := ir.Stat(".treeinfo"); err == nil {
		data, _ := io.ReadAll(io.LimitReader(f.Open(), 1<<20))
		in.TreeInfo = treeinfo.Parse(string(data))
	}
	return in, nil
}

func emulation(m byte) string {
	switch m {
	case 0:
		return "none"
	case 1, 2, 3:
		return "floppy"
	case 4:
		return "hard disk"
	}
	return fmt.Sprintf("0x%x", m)
}

// KernelCmdlines returns the kernel arguments of each boot entry: isolinux
// "append" lines, and GRUB "linux"/"linuxefi"/"linux16" lines without the
// kernel path.
func KernelCmdlines(cfg string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(cfg))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch strings.ToLower(f[0]) {
		case "append":
			out = append(out, strings.Join(f[1:], " "))
		case "linux", "linuxefi", "linux16":
			if len(f) > 1 {
				out = append(out, strings.Join(f[2:], " "))
			}
		}
	}
	return out
}
