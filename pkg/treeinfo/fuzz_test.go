package treeinfo

import (
	"strings"
	"testing"
)

// FuzzParse checks that any .treeinfo parses without panicking,
// and that what it reports comes from the input.
func FuzzParse(f *testing.F) {
	f.Add("[header]\ntype = productmd.treeinfo\nversion = 1.2\n[release]\nname = Rocky Linux\nversion = 9.5\n[tree]\narch = x86_64\n" +
		"[images-x86_64]\nkernel = images/pxeboot/vmlinuz\ninitrd = images/pxeboot/initrd.img\n[stage2]\nmainimage = images/install.img\n" +
		"[variant-BaseOS]\nrepository = BaseOS\n[variant-AppStream]\nrepository = AppStream\n")
	f.Add("[general]\nfamily = CentOS\nversion = 7\narch = x86_64\n")
	f.Add("[a\n=\n[]\nkey\n")
	f.Fuzz(func(t *testing.T, s string) {
		ti := Parse(s)
		for _, v := range append([]string{ti.Family, ti.Version, ti.Arch, ti.Kernel, ti.Initrd, ti.Stage2}, ti.Variants...) {
			if v != "" && !strings.Contains(s, v) {
				t.Fatalf("%q is not in the input", v)
			}
		}
	})
}
