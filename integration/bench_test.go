package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/pkg/builder"
)

// BenchmarkBuild times the reference scenario built from the DVD fixture
// three ways in one run, and reports the ratios:
//
//   - kiln build --boot direct (the default): the ISO's kernel and initrd
//     with -kernel, the kickstart appended to the initrd;
//   - kiln build --boot iso: firmware and isolinux boot the remastered ISO;
//   - Debian's packer (1.6.6, QEMU builder, headless, TCG, communicator
//     none, its HTTP directory serving the kickstart, typed in at the
//     isolinux menu), when installed (make bench-setup installs it).
//
// It also reports kiln's overhead (wall time less the VM's run, from the
// manifest) for the direct build. Run with make bench-build.
// buildBench is a benchmark's world: the mirror and file server on
// loopback, the kickstart for kiln and for packer, and a warm cache.
type buildBench struct {
	dir, httpDir string
	// kilnBuild times one kiln build of the scenario with --boot boot and
	// --accel accel and returns its manifest.
	kilnBuild func(i int, boot, accel string) (time.Duration, *builder.Manifest)
}

func newBuildBench(b *testing.B) *buildBench {
	setup(b)
	bin := kiln(b)
	dir := b.TempDir()
	// The mirror and file server on loopback: kiln reaches them as
	// 127.0.0.1, packer's VM (unrestricted user network) as 10.0.2.2.
	serveB := func(root string) int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go http.Serve(l, http.FileServer(http.Dir(root)))
		return l.Addr().(*net.TCPAddr).Port
	}
	files := filepath.Join(dir, "files")
	os.MkdirAll(filepath.Join(files, "configs"), 0o755)
	os.MkdirAll(filepath.Join(files, "scripts"), 0o755)
	os.WriteFile(filepath.Join(files, "configs/app.conf"), []byte(appConf), 0o644)
	os.WriteFile(filepath.Join(files, "scripts/setup.sh"), []byte(setupSh), 0o644)
	mp, fp := serveB(mirrorDir), serveB(files)
	tmpl, err := os.ReadFile("testdata/my-rocky9.ks")
	if err != nil {
		b.Fatal(err)
	}
	ks := func(host string) string {
		return strings.NewReplacer("MIRROR", fmt.Sprintf("http://%s:%d", host, mp), "FILES", fmt.Sprintf("http://%s:%d", host, fp)).Replace(string(tmpl))
	}
	kilnKS := filepath.Join(dir, "kiln.ks")
	os.WriteFile(kilnKS, []byte(ks("127.0.0.1")), 0o644)
	httpDir := filepath.Join(dir, "http")
	os.MkdirAll(httpDir, 0o755)
	os.WriteFile(filepath.Join(httpDir, "ks.cfg"), []byte(ks("10.0.2.2")), 0o644)
	cache := filepath.Join(dir, "cache")

	kilnBuild := func(i int, boot, accel string) (time.Duration, *builder.Manifest) {
		out := filepath.Join(dir, fmt.Sprintf("%s-%s-%d", boot, accel, i))
		start := time.Now()
		cmd := exec.Command(bin, "build", "--ks", kilnKS, "--iso", fx.DVD, "-o", out, "--format", "qcow2", "--boot", boot,
			"--accel", accel, "--memory", "1G", "--cpus", "1", "--disk-size", "3G", "--cache-dir", cache)
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("kiln build --boot %s: %v\n%s", boot, err, o)
		}
		d := time.Since(start)
		return d, readManifest(b, out+".manifest.json")
	}
	// One build warms the mirror cache, as a user's second build is, and
	// the KVM probe's verdict, as a user's second build on this boot has.
	kilnBuild(-1, "direct", "auto")
	return &buildBench{dir: dir, httpDir: httpDir, kilnBuild: kilnBuild}
}

// BenchmarkBuildPXE is one --boot pxe build (iPXE in the NIC's ROM,
// everything from the ISO served as a tree) against --boot direct of the
// same kickstart.
func BenchmarkBuildPXE(b *testing.B) {
	e := newBuildBench(b)
	var direct, pxe time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, _ := e.kilnBuild(i, "direct", "tcg")
		direct += d
		d, _ = e.kilnBuild(i, "pxe", "tcg")
		pxe += d
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(direct.Seconds()/n, "direct-s")
	b.ReportMetric(pxe.Seconds()/n, "pxe-s")
	b.ReportMetric(pxe.Seconds()/direct.Seconds(), "pxe/direct")
	fmt.Printf("kiln build --boot direct %.1fs, --boot pxe %.1fs: %.2fx\n", direct.Seconds()/n, pxe.Seconds()/n, pxe.Seconds()/direct.Seconds())
}

func BenchmarkBuild(b *testing.B) {
	e := newBuildBench(b)
	dir, httpDir, kilnBuild := e.dir, e.httpDir, e.kilnBuild
	packer, _ := exec.LookPath("packer")
	packerFailed := false
	packerBuild := func(i int) time.Duration {
		out := filepath.Join(dir, fmt.Sprintf("packer-%d", i))
		tpl := map[string]any{"builders": []map[string]any{{
			"type": "qemu", "iso_url": "file://" + fx.DVD, "iso_checksum": "none", "output_directory": out,
			"vm_name": "rocky9.qcow2", "format": "qcow2", "disk_size": "1024M", "disk_interface": "virtio", "net_device": "virtio-net",
			"accelerator": "tcg", "headless": true, "memory": 1024, "cpus": 1, "communicator": "none",
			"http_directory": httpDir, "http_bind_address": "127.0.0.1", "vnc_bind_address": "127.0.0.1",
			// Under TCG, SeaBIOS and isolinux's menu take several
			// seconds; keys typed before the menu are lost.
			"boot_wait": "15s", "boot_command": []string{"<tab> inst.ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg<enter>"},
			"shutdown_timeout": "10m",
		}}}
		js, _ := json.Marshal(tpl)
		p := filepath.Join(dir, fmt.Sprintf("packer-%d.json", i))
		os.WriteFile(p, js, 0o644)
		start := time.Now()
		cmd := exec.Command(packer, "build", "-color=false", p)
		cmd.Env = append(os.Environ(), "PACKER_CACHE_DIR="+filepath.Join(dir, "packer-cache"), "CHECKPOINT_DISABLE=1")
		if o, err := cmd.CombinedOutput(); err != nil {
			// The peer's failure is reported, and kiln's own figures kept.
			fmt.Printf("packer build failed, so there is no packer ratio: %v\n%s\n", err, o)
			packer, packerFailed = "", true
			return 0
		}
		return time.Since(start)
	}
	var direct, viaISO, viaPacker, auto time.Duration
	var overhead, output, autoVM, tcgVM float64
	// The output phases, converting and hashing what the user asked for,
	// are reported apart: they cost the same whichever accelerator ran.
	outputs := func(m *builder.Manifest) (s float64) {
		for _, p := range m.Phases {
			if p.Phase == "convert" || p.Phase == "manifest" {
				s += p.Seconds
			}
		}
		return s
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, m := kilnBuild(i, "direct", "tcg")
		direct += d
		overhead += m.OverheadSeconds
		output += outputs(m)
		tcgVM += m.VMSeconds
		d, m = kilnBuild(i, "direct", "auto")
		auto += d
		autoVM += m.VMSeconds
		d, _ = kilnBuild(i, "iso", "tcg")
		viaISO += d
		if packer != "" {
			viaPacker += packerBuild(i)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(direct.Seconds()/n, "direct-s")
	b.ReportMetric(viaISO.Seconds()/n, "iso-s")
	b.ReportMetric(overhead/n, "overhead-s")
	b.ReportMetric((viaISO-direct).Seconds()/n, "direct-saves-s")
	b.ReportMetric(output/n, "output-s")
	// What --accel auto adds over --accel tcg on a host where KVM hangs,
	// less the difference in the VMs' own run.
	autoExtra := ((auto - direct).Seconds() - (autoVM - tcgVM)) / n
	b.ReportMetric(autoExtra, "auto-extra-s")
	fmt.Printf("kiln build --accel auto adds %.2fs over --accel tcg beyond the VM's own time; the output phases took %.2fs\n", autoExtra, output/n)
	fmt.Printf("kiln build --boot direct %.1fs, --boot iso %.1fs: direct boot saves %.1fs (%.2fx); kiln's own overhead %.2fs\n",
		direct.Seconds()/n, viaISO.Seconds()/n, (viaISO-direct).Seconds()/n, viaISO.Seconds()/direct.Seconds(), overhead/n)
	if packer != "" {
		b.ReportMetric(viaPacker.Seconds()/n, "packer-s")
		b.ReportMetric(viaPacker.Seconds()/direct.Seconds(), "packer/kiln")
		fmt.Printf("packer %.1fs: packer/kiln-direct %.2fx, packer/kiln-iso %.2fx\n",
			viaPacker.Seconds()/n, viaPacker.Seconds()/direct.Seconds(), viaPacker.Seconds()/viaISO.Seconds())
	} else if !packerFailed {
		fmt.Println("packer is not installed (make bench-setup installs it): no packer ratio")
	}
}
