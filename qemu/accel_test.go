package qemu

import (
	"context"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
)

// fakeBinary writes an executable shell script.
func fakeBinary(t *testing.T, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fake-qemu")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolveAccelFallsBackWhenTheProbeHangs(t *testing.T) {
	// /dev/null opens read-write like a working /dev/kvm; the "QEMU" never exits.
	p := &KVMProbe{Binary: fakeBinary(t, "exec sleep 1000"), Device: "/dev/null", Timeout: 300 * time.Millisecond}
	start := time.Now()
	r, err := ResolveAccel(context.Background(), "auto", p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Used != "tcg" || r.ProbeOK || !r.Probed || !strings.Contains(r.Reason, "did not finish within") {
		t.Errorf("report = %+v", r)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("probe took %v", d)
	}
	// Probed once per process: a second resolution reuses the verdict.
	r2, _ := ResolveAccel(context.Background(), "auto", p)
	if r2.Reason != r.Reason {
		t.Errorf("second resolution differs: %+v", r2)
	}
}

func TestResolveAccelNoDevice(t *testing.T) {
	p := &KVMProbe{Device: filepath.Join(t.TempDir(), "kvm")}
	r, err := ResolveAccel(context.Background(), "auto", p)
	if err != nil || r.Used != "tcg" || !strings.Contains(r.Reason, "cannot open") {
		t.Errorf("report = %+v, %v", r, err)
	}
}

func TestResolveAccelProbeExitCode(t *testing.T) {
	p := &KVMProbe{Binary: fakeBinary(t, "exit 3"), Device: "/dev/null"}
	if r, _ := ResolveAccel(context.Background(), "auto", p); r.Used != "kvm" || !r.ProbeOK {
		t.Errorf("a guest that exits with the probe's code means KVM works: %+v", r)
	}
	p = &KVMProbe{Binary: fakeBinary(t, "echo 'Could not access KVM kernel module' >&2; exit 1"), Device: "/dev/null"}
	if r, _ := ResolveAccel(context.Background(), "auto", p); r.Used != "tcg" || !strings.Contains(r.Reason, "Could not access KVM") {
		t.Errorf("report = %+v", r)
	}
}

func TestResolveAccelExplicit(t *testing.T) {
	for _, a := range []string{"kvm", "tcg"} {
		r, err := ResolveAccel(context.Background(), a, &KVMProbe{})
		if err != nil || r.Used != a || r.Probed {
			t.Errorf("%s: %+v, %v", a, r, err)
		}
	}
	if _, err := ResolveAccel(context.Background(), "hvf", &KVMProbe{}); err == nil {
		t.Error("hvf accepted")
	}
}

// TestKVMProbeReal runs the real probe with real QEMU. Whatever it finds,
// it must finish in bounded time with a verdict.
func TestKVMProbeReal(t *testing.T) {
	bin := testutil.RequireTool(t, "qemu-system-x86_64")
	p := &KVMProbe{Binary: bin}
	start := time.Now()
	r, err := ResolveAccel(context.Background(), "auto", p)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("KVM probe: %+v in %v", r, time.Since(start))
	if time.Since(start) > 10*time.Second {
		t.Errorf("probe took %v", time.Since(start))
	}
}

// TestProbeGuestRunsUnderTCG proves the probe guest itself is right: under
// TCG, which always works, it must exit with the probe's code.
func TestProbeGuestRunsUnderTCG(t *testing.T) {
	bin := testutil.RequireTool(t, "qemu-system-x86_64")
	dir := t.TempDir()
	bios := filepath.Join(dir, "probe.bin")
	os.WriteFile(bios, probeBIOS(), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := osexec.CommandContext(ctx, bin, "-nodefaults", "-no-user-config", "-machine", "pc", "-accel", "tcg", "-display", "none", "-m", "16", "-bios", bios, "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04")
	err := cmd.Run()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != probeExitCode {
		t.Fatalf("probe guest under TCG: %v (exit %v)", err, cmd.ProcessState)
	}
}

// TestKVMProbeCache: the verdict is kept for the host's boot and the QEMU
// version; a new QEMU version probes again.
func TestKVMProbeCache(t *testing.T) {
	cacheFile := filepath.Join(t.TempDir(), "kvm-probe.json")
	count := filepath.Join(t.TempDir(), "probes")
	// The fake QEMU answers --version and counts the probes it runs, which
	// hang as KVM does under nested virtualisation.
	bin := fakeBinary(t, `[ "$1" = --version ] && { echo "QEMU emulator version $(cat `+count+`.version 2>/dev/null || echo 7.2.0)"; exit 0; }
echo x >> `+count+`
exec sleep 1000`)
	probe := func() AccelReport {
		p := &KVMProbe{Binary: bin, Device: "/dev/null", Timeout: 300 * time.Millisecond, CacheFile: cacheFile}
		r, err := ResolveAccel(context.Background(), "auto", p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	probes := func() int { b, _ := os.ReadFile(count); return strings.Count(string(b), "x") }
	first := probe()
	if first.Used != "tcg" || first.ProbeCached || probes() != 1 {
		t.Fatalf("first: %+v, %d probes", first, probes())
	}
	second := probe()
	if second.Used != "tcg" || !second.ProbeCached || second.Reason != first.Reason || probes() != 1 {
		t.Errorf("second: %+v, %d probes; want the cached verdict", second, probes())
	}
	os.WriteFile(count+".version", []byte("8.0.0"), 0o644)
	if third := probe(); third.ProbeCached || probes() != 2 {
		t.Errorf("after a QEMU upgrade: %+v, %d probes; want a new probe", third, probes())
	}
}
