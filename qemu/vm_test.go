package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/guest"
	"github.com/kiln-build/kiln/internal/testutil"
)

// The test binary doubles as a fake QEMU and as a child kiln process:
// KILN_FAKE_QEMU and KILN_TEST_CHILD select those roles.
func TestMain(m *testing.M) {
	if mode := os.Getenv("KILN_FAKE_QEMU"); mode != "" {
		fakeQEMU(mode, os.Args[1:])
		return
	}
	if os.Getenv("KILN_TEST_CHILD") != "" {
		childRun()
		return
	}
	code := m.Run()
	if guestDir != "" {
		os.RemoveAll(guestDir)
	}
	os.Exit(code)
}

// fakeQEMU plays QEMU badly, in one of several ways.
func fakeQEMU(mode string, args []string) {
	var socks []string
	for i, a := range args {
		if a == "-chardev" && i+1 < len(args) {
			for _, kv := range strings.Split(args[i+1], ",") {
				if p, ok := strings.CutPrefix(kv, "path="); ok {
					socks = append(socks, p)
				}
			}
		}
	}
	switch mode {
	case "exit":
		fmt.Fprintln(os.Stderr, "qemu-system-x86_64: -drive file=/nonexistent: Could not open '/nonexistent': No such file or directory")
		os.Exit(1)
	case "sleep":
		time.Sleep(time.Hour)
	case "stall", "garbage":
		var conns []net.Conn
		for _, s := range socks {
			c, err := net.Dial("unix", s)
			if err != nil {
				fmt.Fprintln(os.Stderr, "fake qemu:", err)
				os.Exit(1)
			}
			conns = append(conns, c)
		}
		if mode == "garbage" {
			for _, c := range conns {
				if strings.HasSuffix(c.RemoteAddr().String(), "qmp.sock") {
					c.Write([]byte("<html>this is not QMP</html>\n"))
				}
			}
		}
		time.Sleep(time.Hour)
	}
	os.Exit(2)
}

func fakeConfig(t *testing.T, mode string) *Config {
	t.Setenv("KILN_FAKE_QEMU", mode)
	c, err := New(WithBinary(os.Args[0]))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSupervisionWithoutAVM(t *testing.T) {
	tests := []struct {
		mode    string
		outcome Outcome
		detail  string
	}{
		{"exit", OutcomeQEMUFailed, "did not start"},
		{"sleep", OutcomeQEMUFailed, "did not connect its sockets"},
		{"stall", OutcomeQEMUFailed, "QMP handshake"},
		{"garbage", OutcomeQEMUFailed, "QMP handshake"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			cfg := fakeConfig(t, tt.mode)
			var pid int
			start := time.Now()
			res, err := Run(context.Background(), cfg, RunOptions{StartTimeout: time.Second, OnStart: func(p int) { pid = p }})
			var ve *Error
			if !errors.As(err, &ve) {
				t.Fatalf("Run = %v, want a *qemu.Error", err)
			}
			if res.Outcome != tt.outcome || !strings.Contains(res.Detail, tt.detail) {
				t.Errorf("outcome %s %q, want %s %q", res.Outcome, res.Detail, tt.outcome, tt.detail)
			}
			if time.Since(start) > 10*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			if !strings.Contains(err.Error(), "reproduce with: ") || !strings.Contains(err.Error(), "serial log: ") {
				t.Errorf("error lacks the logs or the reproduction line:\n%v", err)
			}
			if tt.mode == "exit" && !strings.Contains(err.Error(), "Could not open '/nonexistent'") {
				t.Errorf("error lacks QEMU's own message:\n%v", err)
			}
			assertGone(t, pid)
			os.RemoveAll(res.RunDir)
		})
	}
}

func TestMissingBinary(t *testing.T) {
	c, _ := New(WithBinary(filepath.Join(t.TempDir(), "no-such-qemu")))
	dir := t.TempDir()
	_, err := Run(context.Background(), c, RunOptions{TempDir: dir})
	if err == nil || !strings.Contains(err.Error(), "no-such-qemu") {
		t.Errorf("Run = %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestCancelDuringStart(t *testing.T) {
	cfg := fakeConfig(t, "sleep")
	ctx, cancel := context.WithCancel(context.Background())
	var pid int
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	res, err := Run(ctx, cfg, RunOptions{OnStart: func(p int) { pid = p }})
	if err == nil || res.Outcome != OutcomeCancelled {
		t.Errorf("Run = %v, %+v", err, res)
	}
	assertGone(t, pid)
	os.RemoveAll(res.RunDir)
}

// assertGone waits for pid to disappear, through a pidfd rather than by
// polling /proc, and fails if it outlives a few seconds.
func assertGone(t *testing.T, pid int) {
	t.Helper()
	if pid == 0 {
		t.Fatal("QEMU never started")
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return
		}
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 5000)
	if err != nil || n != 1 {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		t.Fatalf("QEMU (pid %d) is still alive: %v\n%s", pid, err, st)
	}
}

// Real VMs.

var (
	guestOnce sync.Once
	guestDir  string
	guestErr  error
	kernel    string
)

// testGuest builds the test init and its initramfs once per test binary.
func testGuest(t *testing.T) (kernelPath, initrdPath string) {
	t.Helper()
	testutil.RequireTool(t, "qemu-system-x86_64")
	testutil.RequireTool(t, "go")
	return benchGuest(t)
}

func benchGuest(t testing.TB) (kernelPath, initrdPath string) {
	t.Helper()
	guestOnce.Do(func() {
		var kver string
		kernel, kver, guestErr = guest.Kernel()
		if guestErr != nil {
			return
		}
		guestDir, guestErr = os.MkdirTemp("", "kiln-qemu-test-")
		if guestErr != nil {
			return
		}
		init := filepath.Join(guestDir, "init")
		if guestErr = guest.BuildGo("./internal/testinit", init); guestErr != nil {
			return
		}
		mods, err := guest.Modules(kver, "virtio_pci", "virtio_blk", "virtio_console", "pvpanic_mmio", "button", "evdev")
		if err != nil {
			guestErr = err
			return
		}
		guestErr = guest.Initramfs(filepath.Join(guestDir, "initrd"), init, mods, nil)
	})
	if guestErr != nil {
		if testutil.InCI() {
			t.Fatal(guestErr)
		}
		t.Skip(guestErr)
	}
	return kernel, filepath.Join(guestDir, "initrd")
}

// vmConfig is a VM booting the test init in mode, with a 16 MiB disk.
func vmConfig(t *testing.T, mode string) *Config {
	k, i := testGuest(t)
	disk := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.Truncate(createFile(t, disk), 16<<20); err != nil {
		t.Fatal(err)
	}
	c, err := New(WithMemory(512), WithCPUs(1), WithAccel("tcg"),
		WithKernel(k, i, "console=ttyS0 panic=-1 quiet kiln.test="+mode),
		WithDisk(Disk{Path: disk, Format: "raw", Unsafe: true}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createFile(t *testing.T, p string) string {
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// lines collects log lines for assertions.
type lines struct {
	mu sync.Mutex
	l  []string
}

func (l *lines) add(src, line string) {
	l.mu.Lock()
	l.l = append(l.l, src+": "+line)
	l.mu.Unlock()
}

func TestVMPoweroff(t *testing.T) {
	t.Parallel()
	cfg := vmConfig(t, "ok")
	var got lines
	var pid int
	res, err := Run(context.Background(), cfg, RunOptions{Keep: true, Timeout: 3 * time.Minute, Inactivity: time.Minute,
		OnLine: got.add, OnStart: func(p int) { pid = p }})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	defer os.RemoveAll(res.RunDir)
	t.Logf("poweroff after %v, disk %+v", res.Duration, res.Disk)
	if res.Outcome != OutcomePoweroff || res.Detail != "guest-shutdown" {
		t.Errorf("outcome %s %q", res.Outcome, res.Detail)
	}
	serial, _ := os.ReadFile(res.SerialLog)
	ana, _ := os.ReadFile(res.AnacondaLog)
	if !strings.Contains(string(serial), "KILN-SERIAL-MARKER mode=ok") || !strings.Contains(string(serial), "KILN-DISK-WRITTEN") {
		t.Errorf("serial log lacks the markers:\n%s", serial)
	}
	if !strings.Contains(string(ana), "KILN-ANACONDA-MARKER mode=ok") {
		t.Errorf("installer log lacks the marker:\n%s", ana)
	}
	if res.Disk.WriteBytes < 4<<20 || res.Disk.WriteOps == 0 {
		t.Errorf("blockstats did not see the 4 MiB the guest wrote: %+v", res.Disk)
	}
	found := false
	for _, l := range got.l {
		found = found || l == "anaconda: 12:00:00,000 INFO anaconda: KILN-ANACONDA-MARKER mode=ok"
	}
	if !found {
		t.Errorf("OnLine never saw the installer marker: %q", got.l)
	}
	assertGone(t, pid)
}

func TestVMInstallerError(t *testing.T) {
	t.Parallel()
	res, err := Run(context.Background(), vmConfig(t, "fatal"), RunOptions{Timeout: 3 * time.Minute})
	if err == nil {
		t.Fatal("Run succeeded")
	}
	defer os.RemoveAll(res.RunDir)
	if res.Outcome != OutcomeInstallerError || !strings.Contains(res.Detail, "Traceback (most recent call last)") {
		t.Errorf("outcome %s %q", res.Outcome, res.Detail)
	}
	// The run stops on the traceback's first line, but its last line, the
	// one that says what went wrong, must still reach the log.
	if ana, _ := os.ReadFile(res.AnacondaLog); !strings.Contains(string(ana), "PayloadInstallationError: KILN-TEST") {
		t.Errorf("the installer log lacks the end of the traceback:\n%s", ana)
	}
	for _, p := range []string{res.Screendump, res.SerialLog, res.AnacondaLog} {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error does not name %s:\n%v", p, err)
		}
	}
	f, ferr := os.Open(res.Screendump)
	if ferr != nil {
		t.Fatal(ferr)
	}
	defer f.Close()
	img, derr := png.Decode(f)
	if derr != nil {
		t.Fatalf("screendump is not a PNG: %v", derr)
	}
	if b := img.Bounds(); b.Dx() < 320 || b.Dy() < 200 {
		t.Errorf("screendump is %v", b)
	}
}

func TestVMInactivity(t *testing.T) {
	t.Parallel()
	start := time.Now()
	res, err := Run(context.Background(), vmConfig(t, "hang"), RunOptions{Timeout: 3 * time.Minute, Inactivity: 4 * time.Second, PollInterval: 500 * time.Millisecond})
	if err == nil {
		t.Fatal("Run succeeded")
	}
	defer os.RemoveAll(res.RunDir)
	if res.Outcome != OutcomeInactivity || res.Screendump == "" {
		t.Errorf("outcome %s %q screendump %q", res.Outcome, res.Detail, res.Screendump)
	}
	t.Logf("inactivity detected after %v", time.Since(start))
}

// TestVMReady is a boot check's success: a prompt that ends in no
// newline is seen while it is still the last line, and ends the run.
func TestVMReady(t *testing.T) {
	t.Parallel()
	var partial bool
	res, err := Run(context.Background(), vmConfig(t, "prompt"), RunOptions{Timeout: 3 * time.Minute,
		Ready: func(source, text string) bool {
			if source == "serial" && strings.HasSuffix(text, "login: ") {
				partial = true
			}
			return source == "serial" && strings.HasSuffix(text, "login: ")
		}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Outcome != OutcomeReady || res.Detail != "kiln-test login:" || !partial {
		t.Errorf("outcome %s %q (partial line seen: %v)", res.Outcome, res.Detail, partial)
	}
}

// TestVMProbe: a probe that succeeds ends a run whose guest would never
// end by itself; one that never succeeds leaves the timeout to end it.
func TestVMProbe(t *testing.T) {
	t.Parallel()
	res, err := Run(context.Background(), vmConfig(t, "hang"), RunOptions{Timeout: 3 * time.Minute,
		Probe: func(ctx context.Context) (string, bool) { return "SSH-2.0-test", true }})
	if err != nil || res.Outcome != OutcomeReady || res.Detail != "SSH-2.0-test" {
		t.Errorf("Run = %v, outcome %s %q", err, res.Outcome, res.Detail)
	}
	res, err = Run(context.Background(), vmConfig(t, "hang"), RunOptions{Timeout: 20 * time.Second,
		Probe: func(ctx context.Context) (string, bool) { <-ctx.Done(); return "", false }})
	if err == nil || res.Outcome != OutcomeTimeout {
		t.Errorf("a probe that never succeeds: %v, outcome %s", err, res.Outcome)
	}
	if res != nil {
		os.RemoveAll(res.RunDir)
	}
}

func TestVMPanic(t *testing.T) {
	t.Parallel()
	res, err := Run(context.Background(), vmConfig(t, "panic"), RunOptions{Timeout: 3 * time.Minute})
	if err == nil {
		t.Fatal("Run succeeded")
	}
	defer os.RemoveAll(res.RunDir)
	if res.Outcome != OutcomeCrash || res.Screendump == "" {
		t.Errorf("outcome %s %q: %v", res.Outcome, res.Detail, err)
	}
}

func TestVMReboot(t *testing.T) {
	t.Parallel()
	res, err := Run(context.Background(), vmConfig(t, "reboot"), RunOptions{Timeout: 3 * time.Minute})
	if err == nil {
		t.Fatal("Run succeeded")
	}
	defer os.RemoveAll(res.RunDir)
	if res.Outcome != OutcomeReset {
		t.Errorf("outcome %s %q: %v", res.Outcome, res.Detail, err)
	}
}

func TestVMTimeout(t *testing.T) {
	t.Parallel()
	// No kernel and an empty disk: SeaBIOS finds nothing to boot and waits.
	testutil.RequireTool(t, "qemu-system-x86_64")
	disk := createFile(t, filepath.Join(t.TempDir(), "empty.raw"))
	os.Truncate(disk, 1<<20)
	cfg, _ := New(WithMemory(128), WithAccel("tcg"), WithDisk(Disk{Path: disk}))
	start := time.Now()
	res, err := Run(context.Background(), cfg, RunOptions{Timeout: 2 * time.Second})
	if err == nil {
		t.Fatal("Run succeeded")
	}
	defer os.RemoveAll(res.RunDir)
	if res.Outcome != OutcomeTimeout || res.Screendump == "" {
		t.Errorf("outcome %s %q: %v", res.Outcome, res.Detail, err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("a 2s timeout took %v", d)
	}
}

// TestVMCancelIsGraceful: a cancelled run presses the ACPI power button
// first (system_powerdown), and the guest, which powers off on it as
// systemd-logind would, says it saw the press. A supervisor that went
// straight to SIGKILL or quit would leave no such line.
func TestVMCancelIsGraceful(t *testing.T) {
	t.Parallel()
	cfg := vmConfig(t, "acpi")
	ctx, cancel := context.WithCancel(context.Background())
	var got lines
	opts := RunOptions{Timeout: 3 * time.Minute, ShutdownGrace: 20 * time.Second, OnLine: func(src, l string) {
		got.add(src, l)
		if strings.Contains(l, "KILN-ACPI-LISTENING") {
			cancel()
		}
	}}
	res, err := Run(ctx, cfg, opts)
	if err == nil || res.Outcome != OutcomeCancelled {
		t.Fatalf("Run = %v, %+v", err, res)
	}
	defer os.RemoveAll(res.RunDir)
	pressed := false
	got.mu.Lock()
	for _, l := range got.l {
		pressed = pressed || strings.Contains(l, "KILN-ACPI-POWER-BUTTON")
	}
	got.mu.Unlock()
	if !pressed {
		t.Errorf("the guest never saw the power button: the stop was not graceful\n%q", got.l)
	}
}

// childRun is the child kiln process of TestKillLeavesNoQEMU: it runs a VM
// that hangs, and prints QEMU's pid.
func childRun() {
	c, _ := New(WithBinary(os.Getenv("KILN_TEST_QEMU")), WithMemory(256), WithAccel("tcg"),
		WithKernel(os.Getenv("KILN_TEST_KERNEL"), os.Getenv("KILN_TEST_INITRD"), "console=ttyS0 kiln.test=hang"))
	Run(context.Background(), c, RunOptions{
		OnStart: func(pid int) { fmt.Printf("QEMU-PID %d\n", pid) },
		OnLine: func(src, line string) {
			if strings.Contains(line, "KILN-SERIAL-MARKER") {
				fmt.Println("GUEST-RUNNING")
			}
		},
	})
	os.Exit(0)
}

func TestKillLeavesNoQEMU(t *testing.T) {
	t.Parallel()
	k, i := testGuest(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KILN_TEST_CHILD=1", "KILN_TEST_QEMU=qemu-system-x86_64", "KILN_TEST_KERNEL="+k, "KILN_TEST_INITRD="+i)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Bound the wait: a child that never reports must not hang the suite.
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	br := bufio.NewReader(out)
	line, err := br.ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("reading the child: %v", err)
	}
	// Kill the child only once the guest is running its init.
	if l, err := br.ReadString('\n'); err != nil || l != "GUEST-RUNNING\n" {
		cmd.Process.Kill()
		t.Fatalf("the child's guest never ran: %q, %v", l, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "QEMU-PID ")))
	if err != nil {
		t.Fatalf("child said %q", line)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Fatalf("QEMU %d is not running: %v", pid, err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	io.Copy(io.Discard, out)
	assertGone(t, pid)
}

func TestVMUEFI(t *testing.T) {
	t.Parallel()
	fw, err := FindOVMF(false)
	if err != nil {
		skipOrFail(t, "ovmf")
	}
	cfg := vmConfig(t, "ok")
	cfg.Firmware = fw
	res, err := Run(context.Background(), cfg, RunOptions{Timeout: 4 * time.Minute, Inactivity: time.Minute})
	if err != nil {
		t.Fatalf("Run under OVMF: %v", err)
	}
	if res.Outcome != OutcomePoweroff {
		t.Errorf("outcome %s", res.Outcome)
	}
	t.Logf("OVMF direct boot to poweroff: %v", res.Duration)
	if _, err := os.Stat(fw.Vars); err != nil {
		t.Errorf("the firmware's variable-store template is gone: %v", err)
	}
}
