package qemu

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	// ProbeCached says the verdict came from this boot's earlier probe.
	ProbeCached bool `json:"probe_cached,omitempty"`
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
	// CacheFile, when set, keeps the verdict for the host's boot: it is
	// reused while /proc/sys/kernel/random/boot_id, the QEMU version and
	// the device stay the same, so only the first build after a boot
	// pays for the probe (2 s on a host where KVM hangs).
	CacheFile string

	once   sync.Once
	cached bool
	err    error
	took   time.Duration
}

// Err runs the probe the first time and returns its verdict: nil when KVM works.
func (p *KVMProbe) Err(ctx context.Context) error {
	p.once.Do(func() {
		start := time.Now()
		key := p.cacheKey(ctx)
		if v, ok := p.readCache(key); ok {
			p.cached = true
			if v != "" {
				p.err = errors.New(v)
			}
		} else {
			p.err = p.probe(ctx)
			if ctx.Err() == nil {
				p.writeCache(key)
			}
		}
		p.took = time.Since(start)
	})
	return p.err
}

// probeVerdict is the cache file's content.
type probeVerdict struct {
	Key string `json:"key"` // boot id, QEMU's version line and the device
	Err string `json:"error"`
}

func (p *KVMProbe) cacheKey(ctx context.Context) string {
	if p.CacheFile == "" {
		return ""
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	out, err := exec.CommandContext(ctx, p.binary(), "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(boot)) + "|" + firstLine(out) + "|" + p.device()
}

func (p *KVMProbe) readCache(key string) (string, bool) {
	if key == "" {
		return "", false
	}
	b, err := os.ReadFile(p.CacheFile)
	if err != nil {
		return "", false
	}
	var v probeVerdict
	if json.Unmarshal(b, &v) != nil || v.Key != key {
		return "", false
	}
	return v.Err, true
}

// writeCache records the verdict, complete or not at all.
func (p *KVMProbe) writeCache(key string) {
	if key == "" {
		return
	}
	v := probeVerdict{Key: key}
	if p.err != nil {
		v.Err = p.err.Error()
	}
	b, _ := json.Marshal(v)
	if err := os.MkdirAll(filepath.Dir(p.CacheFile), 0o755); err != nil {
		return
	}
	tmp := p.CacheFile + ".tmp" + strconv.Itoa(os.Getpid())
	if os.WriteFile(tmp, b, 0o644) == nil {
		os.Rename(tmp, p.CacheFile)
	}
}

func (p *KVMProbe) binary() string {
	if p.Binary == "" {
		return "qemu-system-x86_64"
	}
	return p.Binary
}

func (p *KVMProbe) device() string {
	if p.Device == "" {
		return "/dev/kvm"
	}
	return p.Device
}

// probeExitCode is what QEMU exits with when the probe guest writes 1 to
// isa-debug-exit: (1 << 1) | 1.
const probeExitCode = 3

func (p *KVMProbe) probe(ctx context.Context) error {
	dev := p.device()
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
	cmd := exec.CommandContext(ctx, p.binary(), "-nodefaults", "-no-user-config", "-machine", "pc", "-accel", "kvm",
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
		r.ProbeTime, r.ProbeCached = p.took, p.cached
		if err == nil {
			r.ProbeOK, r.Used = true, "kvm"
			return r, nil
		}
		r.Used, r.Reason = "tcg", "KVM is not usable: "+err.Error()
		return r, nil
	}
	return r, fmt.Errorf("accelerator %q: want auto, kvm or tcg", requested)
}
