// Package verify proves that a finished disk image boots: it starts the
// image, on a throwaway qcow2 overlay so the image itself is never
// written, in a VM with no install media and a network that reaches
// nothing, and waits for one of two signals that need no credentials and
// change nothing: a login prompt on the serial console, or an SSH version
// banner from the guest's port 22 through a loopback host forward.
//
// None of the peer tools (Oz, livemedia-creator, Packer,
// diskimage-builder) checks that its output boots; a disk that does not
// is otherwise found only on the hardware.
package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"github.com/kiln-build/kiln/pkg/parttable"
	"github.com/kiln-build/kiln/qemu"
)

// Options describe one boot check.
type Options struct {
	Image     string            // the disk image
	Format    string            // its qemu-img format: raw, qcow2, vmdk, vpc, vhdx
	Firmware  qemu.FirmwareKind // bios or uefi
	Accel     string            // kvm or tcg, resolved
	MemoryMiB int               // default 1024
	Timeout   time.Duration     // default 10 minutes
	TempDir   string            // for the overlay; QEMU's run directory goes in the system's
	Log       *slog.Logger
}

// Result is what a boot check saw.
type Result struct {
	Firmware   qemu.FirmwareKind `json:"firmware"`
	Media      string            `json:"media,omitempty"` // how the disk was installed when not by the build: "usb" or "cdrom" (the install ISO)
	OK         bool              `json:"ok"`
	Signal     string            `json:"signal,omitempty"` // "login-prompt" or "ssh-banner"
	Detail     string            `json:"detail,omitempty"` // the prompt or banner, or why it failed
	Duration   time.Duration     `json:"duration_ns"`
	SerialLog  string            `json:"serial_log,omitempty"`
	Screendump string            `json:"screendump,omitempty"`
	Repro      string            `json:"repro,omitempty"`
}

// loginPrompt is getty's prompt, "HOST login: ", at the end of a line.
var loginPrompt = regexp.MustCompile(`\blogin:\s*$`)

// Boot boots the image once and reports what it saw. It returns an error
// that names the logs, the screendump and a reproduction command when the
// image did not reach a prompt within the timeout.
func Boot(ctx context.Context, o Options) (*Result, error) {
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 1024
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Minute
	}
	abs, err := filepath.Abs(o.Image)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	dir, err := os.MkdirTemp(o.TempDir, "kiln-verify-")
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	overlay := filepath.Join(dir, "overlay.qcow2")
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", o.Format, "-b", abs, overlay).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("verify: making an overlay of %s: %v: %s", o.Image, err, bytes.TrimSpace(out))
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("verify: %w", err)
	}
	opts := []qemu.Option{qemu.WithMemory(o.MemoryMiB), qemu.WithCPUs(1), qemu.WithAccel(o.Accel),
		qemu.WithDisk(qemu.Disk{Path: overlay, Format: "qcow2", Unsafe: true}),
		qemu.WithUserNet(qemu.UserNet{Restrict: true, HostFwd: []string{fmt.Sprintf("tcp:127.0.0.1:%d-:22", port)}}),
		qemu.WithBootOrder("disk")}
	if o.Firmware == qemu.UEFI {
		fw, err := qemu.FindOVMF(false)
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("verify: %w", err)
		}
		opts = append(opts, qemu.WithFirmware(fw))
	}
	cfg, err := qemu.New(opts...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("verify: %w", err)
	}
	signal := ""
	// The run directory is QEMU's sockets: it goes in the system's
	// temporary directory, whose short path a unix socket's 108 bytes
	// can hold, not beside the overlay.
	run := qemu.RunOptions{Keep: true, Timeout: o.Timeout, Log: o.Log,
		Ready: func(source, text string) bool {
			if source == "serial" && loginPrompt.MatchString(text) {
				signal = "login-prompt"
				return true
			}
			return false
		},
		Probe: func(ctx context.Context) (string, bool) {
			b, ok := sshBanner(ctx, fmt.Sprintf("127.0.0.1:%d", port))
			if ok {
				signal = "ssh-banner"
			}
			return b, ok
		}}
	res, err := qemu.Run(ctx, cfg, run)
	r := &Result{Firmware: orBIOS(o.Firmware)}
	if res != nil {
		r.Duration, r.SerialLog, r.Screendump, r.Repro, r.Detail = res.Duration, res.SerialLog, res.Screendump, res.Repro, res.Detail
	}
	os.RemoveAll(dir)
	if err != nil {
		return r, fmt.Errorf("verify: %s did not boot under %s: %w", o.Image, r.Firmware, err)
	}
	if res.Outcome != qemu.OutcomeReady {
		return r, fmt.Errorf("verify: %s did not boot under %s: the VM ended in %s (%s)\nserial log: %s\nreproduce with: (cd %s && %s)",
			o.Image, r.Firmware, res.Outcome, res.Detail, res.SerialLog, res.RunDir, res.Repro)
	}
	r.OK, r.Signal = true, signal
	// Success keeps nothing: the overlay is spent and the logs said yes.
	os.RemoveAll(dir)
	os.RemoveAll(res.RunDir)
	r.SerialLog, r.Screendump = "", ""
	return r, nil
}

func orBIOS(f qemu.FirmwareKind) qemu.FirmwareKind {
	if f == "" {
		return qemu.BIOS
	}
	return f
}

// freePort picks a loopback port for the SSH forward.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// sshBanner connects to addr until the guest answers with an SSH version
// line (RFC 4253 section 4.2) or ctx ends. QEMU accepts the forwarded
// connection itself and closes it when nothing in the guest listens, so
// each try is a fresh connection.
func sshBanner(ctx context.Context, addr string) (string, bool) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		var d net.Dialer
		if c, err := d.DialContext(ctx, "tcp", addr); err == nil {
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 255)
			n, _ := c.Read(buf)
			c.Close()
			if line, _, _ := bytes.Cut(buf[:n], []byte("\n")); bytes.HasPrefix(line, []byte("SSH-2.0-")) || bytes.HasPrefix(line, []byte("SSH-1.99-")) {
				return string(bytes.TrimSpace(line)), true
			}
		}
		select {
		case <-ctx.Done():
			return "", false
		case <-tick.C:
		}
	}
}

// FirmwareOf tells which firmware a disk was laid out for, from its
// partition table: an EFI system partition means UEFI, a BIOS boot
// partition or an MBR with no GPT means BIOS. Both gives both.
func FirmwareOf(gptTypes []string) []qemu.FirmwareKind {
	var out []qemu.FirmwareKind
	has := map[string]bool{}
	for _, t := range gptTypes {
		has[t] = true
	}
	if has[biosBootGUID] || len(gptTypes) == 0 {
		out = append(out, qemu.BIOS)
	}
	if has[espGUID] {
		out = append(out, qemu.UEFI)
	}
	if len(out) == 0 {
		out = append(out, qemu.BIOS)
	}
	return out
}

var (
	biosBootGUID = parttable.TypeGUIDBIOSBoot.String()
	espGUID      = parttable.TypeGUIDESP.String()
)

// PartitionTypes reads the GPT partition type GUIDs of an image (UEFI
// 2.10 section 5.3): the header at LBA 1 and its entry array. Images that
// are not raw are read through qemu-img dd. An MBR disk gives none.
func PartitionTypes(ctx context.Context, image, format string) ([]string, error) {
	path := image
	if format != "raw" {
		tmp, err := os.CreateTemp("", "kiln-gpt-")
		if err != nil {
			return nil, err
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		// The primary header and a 128-entry array fill 34 sectors.
		if out, err := exec.CommandContext(ctx, "qemu-img", "dd", "-f", format, "-O", "raw", "bs=512", "count=34", "if="+image, "of="+tmp.Name()).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("reading the partition table of %s: %v: %s", image, err, bytes.TrimSpace(out))
		}
		path = tmp.Name()
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	g, err := parttable.ReadGPT(f, st.Size())
	if errors.Is(err, parttable.ErrNoGPT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the partition table of %s: %w", image, err)
	}
	var types []string
	for i := 0; i < int(g.Header.NumEntries); i++ {
		if e := g.Entry(i); e.Type != (parttable.GUID{}) {
			types = append(types, e.Type.String())
		}
	}
	return types, nil
}
