package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/qemu"
)

// TestBuildPXE builds the reference scenario with --boot pxe under BIOS
// and UEFI: the VM has no CD and no -kernel; the iPXE in its NIC's ROM
// takes the boot script from the user network's DHCP, and the installer
// boots and installs from the DVD kiln serves as a tree.
func TestBuildPXE(t *testing.T) {
	setup(t)
	testutil.RequireFile(t, "/usr/lib/ipxe/qemu/efi-virtio.rom")
	for _, fw := range []string{"bios", "uefi"} {
		t.Run(fw, func(t *testing.T) {
			b := newBuildEnv(t)
			ks := b.kickstart(t, nil)
			out := filepath.Join(b.dir, "pxe-"+fw)
			common := []string{"--ks", ks, "--iso", fx.DVD, "-o", out, "--format", "raw", "--boot", "pxe", "--firmware", fw,
				"--accel", "tcg", "--memory", "1G", "--cpus", "1", "--disk-size", "3G", "--cache-dir", b.cache,
				"--mirror", "files=" + b.files() + "/", "--inactivity", "2m"}
			plan, err := b.run(t, append([]string{"build", "--dry-run"}, common...)...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(plan, "bootfile=http://10.0.2.100:PORT/TOKEN/boot/boot.ipxe") || strings.Contains(plan, "-kernel") || strings.Contains(plan, "media=cdrom") {
				t.Errorf("the plan's VM does not netboot alone:\n%s", plan)
			}
			if _, err := b.run(t, append([]string{"build"}, common...)...); err != nil {
				t.Fatal(err)
			}
			checkScenario(t, out+".raw")
			m := readManifest(t, out+".manifest.json")
			if m.Firmware.Kind != fw || !hasPackage(m, "custom-package-1") {
				t.Errorf("manifest: firmware %+v, packages %d", m.Firmware, len(m.Packages))
			}
		})
	}
}

// TestServeISOPXE boots a VM the test starts itself, as a machine on the
// network, from a standalone kiln serve with a boot ISO and a DVD: iPXE
// fetches the script by DHCP's boot file, the kernel, initrd and stage2
// come from the boot ISO, inst.repo= is the DVD, and the
// install uses only the URLs kiln serves (the kickstart names loopback
// servers the VM cannot reach itself).
func TestServeISOPXE(t *testing.T) {
	setup(t)
	b := newBuildEnv(t)
	tmpl, _ := os.ReadFile("testdata/my-rocky9.ks")
	ks := strings.NewReplacer("MIRROR", fmt.Sprintf("http://127.0.0.1:%d", b.mirrorPort), "FILES", fmt.Sprintf("http://127.0.0.1:%d", b.filesPort)).Replace(string(tmpl))
	ksPath := filepath.Join(b.dir, "serve.ks")
	os.WriteFile(ksPath, []byte(ks), 0o644)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ev struct {
		Event   string `json:"event"`
		Address string `json:"address"`
		Cmdline string `json:"kernel_cmdline"`
		URLs    []struct {
			IPXE string `json:"ipxe_script"`
		} `json:"urls"`
	}
	stderr := startServe(t, ctx, &ev, "--ks", ksPath, "--iso", fx.BootISO, "--iso", fx.DVD, "--cache-dir", b.cache,
		"--append", "inst.text console=ttyS0", "--allow", "127.0.0.0/8")
	if len(ev.URLs) == 0 || ev.URLs[0].IPXE == "" || !strings.Contains(ev.Cmdline, "/iso/0/ inst.repo=") || !strings.Contains(ev.Cmdline, "/iso/1/") {
		t.Fatalf("no serving event with an iPXE script, stage2 from the boot ISO and the repo from the DVD: %+v\n%s", ev, stderr.String())
	}
	// The VM reaches the host's loopback at 10.0.2.2.
	u, _ := url.Parse(ev.URLs[0].IPXE)
	u.Host = "10.0.2.2:" + u.Port()
	disk := filepath.Join(t.TempDir(), "disk.raw")
	os.WriteFile(disk, nil, 0o644)
	os.Truncate(disk, 3<<30)
	cfg, err := qemu.New(qemu.WithMemory(1024), qemu.WithCPUs(1), qemu.WithAccel("tcg"),
		qemu.WithUserNet(qemu.UserNet{BootFile: u.String()}), qemu.WithBootOrder("net", "disk"),
		qemu.WithDisk(qemu.Disk{Path: disk, Format: "raw", Unsafe: true}))
	if err != nil {
		t.Fatal(err)
	}
	res, err := qemu.Run(ctx, cfg, qemu.RunOptions{TempDir: t.TempDir(), Keep: true, Timeout: 10 * time.Minute, Inactivity: 2 * time.Minute})
	if err != nil {
		t.Fatalf("%v\n%s\nkiln serve:\n%s", err, tail(res), stderr.String())
	}
	checkScenario(t, disk)
	cancel()
	log := stderr.String()
	if !strings.Contains(log, `"msg":"kickstart fetched","client":"127.0.0.1:`) {
		t.Errorf("kiln serve did not log the machine that fetched its kickstart:\n%s", log)
	}
	if strings.Contains(log, "yourpassword") {
		t.Errorf("the kickstart's password reached the log")
	}
}

// lockedBuffer is a bytes.Buffer a process writes while a test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServe runs kiln serve --json with args for the rest of the test
// (ctx ends it), decodes its serving event into ev, and returns its log:
// stderr, and the JSON lines that follow the event on stdout.
func startServe(t *testing.T, ctx context.Context, ev any, args ...string) *lockedBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, kiln(t), append([]string{"--json", "serve"}, args...)...)
	stdout, _ := cmd.StdoutPipe()
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Stop kiln serve before waiting for it, whichever way the test ends.
	t.Cleanup(func() { cancel(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var kind struct{ Event string }
		if json.Unmarshal(sc.Bytes(), &kind) == nil && kind.Event == "serving" {
			json.Unmarshal(sc.Bytes(), ev)
			break
		}
	}
	// With --json, the log is JSON lines on stdout too.
	go func() {
		for sc.Scan() {
			stderr.Write(append(sc.Bytes(), '\n'))
		}
	}()
	return stderr
}
