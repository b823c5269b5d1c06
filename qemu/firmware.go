package qemu

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
)

// firmwareDescriptor is a QEMU firmware descriptor
// (docs/interop/firmware.json in QEMU's source).
type firmwareDescriptor struct {
	Description    string   `json:"description"`
	InterfaceTypes []string `json:"interface-types"`
	Mapping        struct {
		Device     string `json:"device"`
		Executable struct {
			Filename string `json:"filename"`
			Format   string `json:"format"`
		} `json:"executable"`
		NVRAMTemplate struct {
			Filename string `json:"filename"`
			Format   string `json:"format"`
		} `json:"nvram-template"`
	} `json:"mapping"`
	Targets []struct {
		Architecture string   `json:"architecture"`
		Machines     []string `json:"machines"`
	} `json:"targets"`
	Features []string `json:"features"`
}

// FirmwareDescriptorDirs are searched, in order, for descriptors. A file
// in an earlier directory overrides one of the same name in a later one,
// as QEMU's own lookup does.
var firmwareDescriptorDirs = []string{"/etc/qemu/firmware", "/usr/share/qemu/firmware"}

// fallbackOVMF are known code/vars pairs: Debian's, then Fedora's.
var fallbackOVMF = [][2]string{
	{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
	{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
	{"/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"},
}

// FindOVMF finds UEFI firmware for q35 on x86_64, through QEMU's firmware
// descriptors first and known paths second.
func FindOVMF(secureBoot bool) (Firmware, error) {
	return findOVMF(firmwareDescriptorDirs, fallbackOVMF, secureBoot)
}

func findOVMF(dirs []string, fallback [][2]string, secureBoot bool) (Firmware, error) {
	byName := map[string]string{}
	for i := len(dirs) - 1; i >= 0; i-- {
		files, _ := filepath.Glob(filepath.Join(dirs[i], "*.json"))
		for _, f := range files {
			byName[filepath.Base(f)] = f
		}
	}
	var names []string
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		data, err := os.ReadFile(byName[n])
		if err != nil {
			continue
		}
		var d firmwareDescriptor
		if json.Unmarshal(data, &d) != nil || !d.suits(secureBoot) {
			continue
		}
		code, vars := d.Mapping.Executable.Filename, d.Mapping.NVRAMTemplate.Filename
		if exists(code) && exists(vars) {
			return Firmware{Kind: UEFI, Code: code, Vars: vars, SecureBoot: secureBoot}, nil
		}
	}
	if !secureBoot {
		for _, p := range fallback {
			if exists(p[0]) && exists(p[1]) {
				return Firmware{Kind: UEFI, Code: p[0], Vars: p[1]}, nil
			}
		}
	}
	return Firmware{}, fmt.Errorf("qemu: no UEFI firmware found (install Debian's ovmf package); looked in %v", dirs)
}

func (d *firmwareDescriptor) suits(secureBoot bool) bool {
	if !has(d.InterfaceTypes, "uefi") || d.Mapping.Device != "flash" || d.Mapping.Executable.Format != "raw" {
		return false
	}
	if has(d.Features, "secure-boot") != secureBoot || (secureBoot && !has(d.Features, "enrolled-keys")) {
		return false
	}
	if has(d.Features, "intel-tdx") || has(d.Features, "amd-sev-es") {
		return false // confidential-computing builds need a special launch
	}
	for _, t := range d.Targets {
		if t.Architecture != "x86_64" {
			continue
		}
		for _, m := range t.Machines {
			if ok, _ := path.Match(m, "pc-q35-7.2"); ok {
				return true
			}
		}
	}
	return false
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
