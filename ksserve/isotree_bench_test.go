package ksserve

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkISOTree is kiln serve --iso, serving files out of an ISO
// image in place, against nginx serving the same files from a directory
// (the tree the image was made from, byte for byte what xorriso
// extracts), in one run, both warm in the page cache:
//
//	make bench-netboot
//
// Floor: at least 0.9x nginx on large files.
func BenchmarkISOTree(b *testing.B) {
	e := setupBench(b)
	root := filepath.Join(e.dir, "upstream")
	image := filepath.Join(e.dir, "tree.iso")
	boot := filepath.Join(e.dir, "boot")
	os.MkdirAll(boot, 0o755)
	os.WriteFile(filepath.Join(boot, "vmlinuz"), []byte("kernel"), 0o644)
	os.WriteFile(filepath.Join(boot, "initrd.img"), []byte("initrd"), 0o644)
	os.WriteFile(filepath.Join(boot, "treeinfo"), []byte("[images-x86_64]\nkernel = images/pxeboot/vmlinuz\ninitrd = images/pxeboot/initrd.img\n"), 0o644)
	if out, err := exec.Command("xorriso", "-as", "mkisofs", "-R", "-o", image, "-graft-points",
		"large="+filepath.Join(root, "large"), "small="+filepath.Join(root, "small"),
		"images/pxeboot/vmlinuz="+filepath.Join(boot, "vmlinuz"), "images/pxeboot/initrd.img="+filepath.Join(boot, "initrd.img"),
		".treeinfo="+filepath.Join(boot, "treeinfo")).CombinedOutput(); err != nil {
		b.Fatalf("xorriso: %v\n%s", err, out)
	}
	base, stop := e.isoServer(b, image)
	defer stop()
	// nginx's static server is the upstream of the proxy benchmarks.
	e.warmRuns(b, base, e.upstream, []int{1, 8})
}

// isoServer runs kiln serve --iso image in a process of its own and
// returns the tree's base URL.
func (e *benchEnv) isoServer(b *testing.B, image string) (string, func()) {
	ev, stop := e.kilnServe(b, "--iso", image, "--cache-dir", filepath.Join(e.dir, "iso-cache"))
	if len(ev.URLs) == 0 || ev.URLs[0]["iso0"] == "" {
		stop()
		b.Fatal("kiln serve did not say where it serves the ISO")
	}
	return strings.TrimSuffix(ev.URLs[0]["iso0"], "/"), stop
}
