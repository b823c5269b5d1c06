package ksserve

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
	for _, set := range benchSets {
		for _, conc := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/c%d", set.name, conc), func(b *testing.B) {
				e.fetchAll(b, base, set, 4)
				e.fetchAll(b, e.upstream, set, 4)
				var kd, nd time.Duration
				var kb, nb int64
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					start := time.Now()
					kb += e.fetchAll(b, base, set, conc)
					kd += time.Since(start)
					start = time.Now()
					nb += e.fetchAll(b, e.upstream, set, conc)
					nd += time.Since(start)
				}
				k, n := mbps(kb, kd), mbps(nb, nd)
				b.ReportMetric(k, "kiln-MB/s")
				b.ReportMetric(n, "nginx-MB/s")
				b.ReportMetric(k/n, "kiln/nginx")
			})
		}
	}
}

// isoServer runs kiln serve --iso image in a process of its own and
// returns the tree's base URL.
func (e *benchEnv) isoServer(b *testing.B, image string) (string, func()) {
	if e.kiln == "" {
		e.kiln = filepath.Join(e.dir, "kiln")
		if out, err := exec.Command("go", "build", "-o", e.kiln, "../cmd/kiln").CombinedOutput(); err != nil {
			b.Fatalf("go build ../cmd/kiln: %v\n%s", err, out)
		}
	}
	ks := filepath.Join(e.dir, "iso.ks")
	os.WriteFile(ks, []byte("text\nrootpw --lock\nautopart\n"), 0o644)
	cmd := exec.Command(e.kiln, "--json", "serve", "--ks", ks, "--iso", image, "--cache-dir", filepath.Join(e.dir, "iso-cache"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop := func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }
	var ev struct {
		Event string
		URLs  []map[string]string
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == "serving" {
			break
		}
	}
	if len(ev.URLs) == 0 || ev.URLs[0]["iso0"] == "" {
		stop()
		b.Fatal("kiln serve did not say where it serves the ISO")
	}
	go io.Copy(io.Discard, stdout)
	return strings.TrimSuffix(ev.URLs[0]["iso0"], "/"), stop
}
