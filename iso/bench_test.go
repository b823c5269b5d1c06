package iso

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRemaster measures kiln iso against a plain copy of the image
// and against xorriso's replay (mkksiso's engine), with the same edit in
// each (ks.cfg added at the root), on a 2 GB DVD-like image:
//
//	make bench-iso
//
// It runs on the ordinary file system of the temporary directory, and on
// XFS with reflinks (a loop-mounted file) when it runs as root. Each tool
// is timed to a synced output, from a cold page cache; the best of
// -benchtime runs counts. kiln runs as its own process, so its peak
// RSS is measured too. With the media checksum, kiln is compared with
// mkksiso's own pipeline, xorriso then implantisomd5, and with itself
// without the checksum (kiln+md5/kiln): it hashes the bytes as it writes
// them, in one pass.
func BenchmarkRemaster(b *testing.B) {
	for _, tool := range []string{"xorriso", "implantisomd5", "mkfs.fat", "mcopy", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not installed", tool)
		}
	}
	cache := filepath.Join(os.TempDir(), "kiln-bench-iso")
	os.MkdirAll(cache, 0o755)
	src := filepath.Join(cache, "dvd-2g.iso")
	if _, err := os.Stat(src); err != nil {
		buildDVD(b, cache, src, 2<<30)
	}
	kiln := filepath.Join(cache, "kiln")
	if out, err := exec.Command("go", "build", "-o", kiln, "../cmd/kiln").CombinedOutput(); err != nil {
		b.Fatalf("building kiln: %v %s", err, out)
	}
	ks := filepath.Join(cache, "ks.cfg")
	os.WriteFile(ks, []byte(testKS), 0o644)

	fsDirs := map[string]string{"ext4": b.TempDir()}
	if xfs := mountXFS(b); xfs != "" {
		fsDirs["xfs-reflink"] = xfs
	}
	for name, dir := range fsDirs {
		b.Run(name, func(b *testing.B) {
			in := filepath.Join(dir, "in.iso")
			if name != "ext4" {
				run(b, "cp", src, in)
			} else {
				in = src
			}
			// The disk under these machines is noisy: each tool's best of N
			// runs is compared, and the order rotates between runs.
			cp, xo, xoMD5, kn, knMD5 := time.Duration(1<<62), time.Duration(1<<62), time.Duration(1<<62), time.Duration(1<<62), time.Duration(1<<62)
			var rss int64
			for i := 0; i < b.N; i++ {
				out := filepath.Join(dir, "out.iso")
				timeIt := func(d *time.Duration, name string, args ...string) int64 {
					os.Remove(out)
					dropCaches()
					start := time.Now()
					cmd := exec.Command(name, args...)
					cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
					if o, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("%s: %v\n%s", name, err, o)
					}
					syncFile(b, out)
					*d = min(*d, time.Since(start))
					return cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
				}
				cpArgs := []string{in, out}
				if name != "ext4" {
					cpArgs = []string{"--reflink=always", in, out}
				}
				runs := []func(){
					func() { timeIt(&cp, "cp", cpArgs...) },
					func() {
						timeIt(&xo, "xorriso", "-indev", in, "-outdev", out, "-boot_image", "any", "replay", "-map", ks, "/ks.cfg")
					},
					func() {
						timeIt(&xoMD5, "sh", "-c", `xorriso -indev "$1" -outdev "$2" -boot_image any replay -map "$3" /ks.cfg && implantisomd5 --force "$2"`,
							"sh", in, out, ks)
					},
					func() { rss = max(rss, timeIt(&kn, kiln, "iso", "--ks", ks, "--no-md5", "--timeout", "-1", in, out)) },
					func() { rss = max(rss, timeIt(&knMD5, kiln, "iso", "--ks", ks, in, out)) },
				}
				for j := range runs {
					runs[(i+j)%len(runs)]()
				}
			}
			b.ReportMetric(cp.Seconds(), "cp-s")
			b.ReportMetric(xo.Seconds(), "xorriso-s")
			b.ReportMetric(kn.Seconds(), "kiln-s")
			b.ReportMetric(knMD5.Seconds(), "kiln+md5-s")
			b.ReportMetric(xoMD5.Seconds(), "xorriso+md5-s")
			b.ReportMetric(kn.Seconds()/cp.Seconds(), "kiln/cp")
			b.ReportMetric(knMD5.Seconds()/kn.Seconds(), "kiln+md5/kiln")
			b.ReportMetric(xoMD5.Seconds()/knMD5.Seconds(), "xorriso+md5/kiln+md5")
			b.ReportMetric(xo.Seconds()/kn.Seconds(), "xorriso/kiln")
			b.ReportMetric(float64(rss)/1024, "kiln-maxrss-MiB")
		})
	}
}

// buildDVD writes a DVD-like image of about size bytes: the EL9 boot tree
// and packages of random data with RPM-like names.
func buildDVD(b *testing.B, dir, out string, size int64) {
	tree := filepath.Join(dir, "tree")
	os.RemoveAll(tree)
	buildTree(b, tree)
	rng := rand.New(rand.NewChaCha8([32]byte{'k', 'i', 'l', 'n'}))
	buf := make([]byte, 3<<20)
	for i := int64(0); i*int64(len(buf)) < size; i++ {
		p := filepath.Join(tree, "BaseOS", "Packages", fmt.Sprintf("package-number-%04d-1.0-1.el9.x86_64.rpm", i))
		for j := range buf {
			buf[j] = byte(rng.Uint32())
		}
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	run(b, "xorriso", "-as", "mkisofs", "-o", out+".tmp", "-V", "Rocky-9-5-x86_64-dvd", "-R", "-J", "-joliet-long",
		"-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
		"-eltorito-alt-boot", "-e", "images/efiboot.img", "-no-emul-boot", "-isohybrid-mbr", "/usr/lib/ISOLINUX/isohdpfx.bin",
		"-isohybrid-gpt-basdat", tree)
	os.Rename(out+".tmp", out)
	os.RemoveAll(tree)
}

// mountXFS loop-mounts a fresh XFS with reflinks, as root; "" otherwise.
func mountXFS(b *testing.B) string {
	if os.Getuid() != 0 {
		return ""
	}
	if _, err := exec.LookPath("mkfs.xfs"); err != nil {
		return ""
	}
	dir := b.TempDir()
	img := filepath.Join(dir, "xfs.img")
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	f, err := os.Create(img)
	if err != nil {
		return ""
	}
	err = f.Truncate(8 << 30)
	f.Close()
	if err != nil {
		b.Logf("sizing the XFS image: %v", err)
		return ""
	}
	if out, err := exec.Command("mkfs.xfs", "-q", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		b.Logf("mkfs.xfs: %v %s", err, out)
		return ""
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		b.Logf("mount: %v %s", err, out)
		return ""
	}
	b.Cleanup(func() { exec.Command("umount", mnt).Run() })
	return mnt
}

func syncFile(b *testing.B, p string) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	f.Sync()
	f.Close()
}

// dropCaches makes every tool start cold, when the benchmark may.
func dropCaches() {
	syscall.Sync()
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
}
