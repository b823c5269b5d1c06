package qemu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// AccelReport says which accelerator a run uses and why.
type AccelReport struct {
	Requested string        `json:"requested"` // auto, kvm or tcg
	Used      string        `json:"used"`      // kvm or tcg
	Probed    bool          `json:"probed"`
	ProbeOK   bool          `json:"probe_ok"`
	Reason    string        `json:"reason,omitempty"` // why KVM was not used
	ProbeTime time.Duration `json:"probe_time_ns"`
}

// KVMProbe decides, once per process, whether KVM really runs guests.
// /dev/kvm may open and still be useless: under nested virtualisation
// guests can hang forever. So the probe boots a guest of a few bytes of
// real-mode code that leaves at once through isa-debug-exit, and KVM is
// used only if QEMU exits with that guest's code within Timeout.
type KVMProbe struct {
	Binary  string        // QEMU; default qemu-system-x86_64
	Device  string        // default /dev/kvm
	Timeout time.Duration // default 2s

	once sync.Once
	err  error
	took time.Duration
}

// Err runs the probe the first time and returns its verdict: nil when KVM works.
func (p *KVMProbe) Err(ctx context.Context) error {
	p.once.Do(func() {
		start := time.Now()
		p.err = p.probe(ctx)
		p.took = time.Since(start)
	})
	return p.err
}

// probeExitCode is what QEMU exits with when the probe guest writes 1 to
// isa-debug-exit: (1 << 1) | 1.
const probeExitCode = 3

func (p *KVMProbe) probe(ctx context.Context) error {
	dev := p.Device
	if dev == "" {
		dev = "/dev/kvm"
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("cannot open %s: %w", dev, err)
	}
	f.Close()
	dir, err := os.MkdirTemp("", "kiln-kvm-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bios := filepath.Join(dir, "probe.bin")
	if err := os.WriteFile(bios, probeBIOS(), 0o600); err != nil {
		return err
	}
	timeout := p.Timeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	bin := p.Binary
	if bin == "" {
		bin = "qemu-system-x86_64"
	}
	cmd := exec.CommandContext(ctx, bin, "-nodefaults", "-no-user-config", "-machine", "pc", "-accel", "kvm",
		"-display", "none", "-m", "16", "-bios", bios, "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return fmt.Errorf("a KVM guest did not finish within %v (nested virtualisation?)", timeout)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == probeExitCode {
		return nil
	}
	if err == nil {
		return errors.New("the probe guest did not run (QEMU exited 0)")
	}
	return fmt.Errorf("running a KVM guest failed: %v: %s", err, firstLine(out))
}

// probeBIOS is a 64 KiB BIOS image (mapped at 0xF0000 and below 4 GiB)
// whose reset vector switches to 32-bit protected mode and then writes 1
// to port 0xf4 (isa-debug-exit). Real-mode code alone is not enough: under
// the nested KVM this was written on, a real-mode guest exits at once but
// the first switch to protected mode hangs, as every real kernel does.
func probeBIOS() []byte {
	b := make([]byte, 64<<10)
	// 0x00: a flat GDT: null, 4 GiB code (0x08), 4 GiB data (0x10).
	binary.LittleEndian.PutUint64(b[0x08:], 0x00CF9A000000FFFF)
	binary.LittleEndian.PutUint64(b[0x10:], 0x00CF92000000FFFF)
	// 0x18: the GDT register: limit 23, base 0xF0000.
	binary.LittleEndian.PutUint16(b[0x18:], 0x17)
	binary.LittleEndian.PutUint32(b[0x1a:], 0x000F0000)
	// 0x100: 16-bit code, run as F000:0100.
	copy(b[0x100:], []byte{
		0xfa,                               // cli
		0x2e, 0x0f, 0x01, 0x16, 0x18, 0x00, // lgdt cs:[0x0018]
		0x0f, 0x20, 0xc0, // mov eax, cr0
		0x0c, 0x01, // or al, 1 (PE)
		0x0f, 0x22, 0xc0, // mov cr0, eax
		0x66, 0xea, 0x00, 0x02, 0x0f, 0x00, 0x08, 0x00, // jmp dword 0x08:0x000F0200
	})
	// 0x200: 32-bit code.
	copy(b[0x200:], []byte{
		0x66, 0xb8, 0x10, 0x00, // mov ax, 0x10
		0x8e, 0xd8, // mov ds, ax
		0xb0, 0x01, // mov al, 1
		0xe6, 0xf4, // out 0xf4, al
		0xf4,       // hlt
		0xeb, 0xfd, // jmp back to hlt
	})
	// 0xFFF0: the reset vector: jmp far F000:0100.
	copy(b[0xfff0:], []byte{0xea, 0x00, 0x01, 0x00, 0xf0})
	return b
}

func firstLine(b []byte) string {
	for i, c := range b {
		if c == '\n' {
			return string(b[:i])
		}
	}
	return string(b)
}

// ResolveAccel turns a requested accelerator (auto, kvm or tcg) into the
// one to use. auto uses KVM only when the probe passes.
func ResolveAccel(ctx context.Context, requested string, p *KVMProbe) (AccelReport, error) {
	r := AccelReport{Requested: requested}
	switch requested {
	case "tcg":
		r.Used = "tcg"
		return r, nil
	case "kvm":
		r.Used = "kvm"
		return r, nil
	case "auto", "":
		r.Requested = "auto"
		r.Probed = true
		err := p.Err(ctx)
		r.ProbeTime = p.took
		if err == nil {
			r.ProbeOK, r.Used = true, "kvm"
			return r, nil
		}
		r.Used, r.Reason = "tcg", "KVM is not usable: "+err.Error()
		return r, nil
	}
	return r, fmt.Errorf("accelerator %q: want auto, kvm or tcg", requested)
}
