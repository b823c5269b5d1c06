package qemu

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kiln-build/kiln/internal/fileutil"

	"github.com/kiln-build/kiln/qemu/qmp"
)

// Outcome is how a VM run ended.
type Outcome string

// Outcomes. Only OutcomePoweroff is a success for an install.
const (
	OutcomePoweroff       Outcome = "poweroff"        // the guest shut down
	OutcomeReset          Outcome = "reset"           // the guest rebooted (-no-reboot turns it into an exit)
	OutcomeCrash          Outcome = "crash"           // guest panic
	OutcomeTimeout        Outcome = "timeout"         // the total time ran out
	OutcomeInactivity     Outcome = "inactivity"      // no disk or network activity for too long
	OutcomeInstallerError Outcome = "installer-error" // a fatal line in the installer's logs
	OutcomeIOError        Outcome = "io-error"        // a disk write failed on the host (often a full disk)
	OutcomeCancelled      Outcome = "cancelled"       // the caller's context ended
	OutcomeQEMUFailed     Outcome = "qemu-failed"     // QEMU exited without a guest shutdown
	OutcomeReady          Outcome = "ready"           // a boot check saw what it waits for (RunOptions.Ready, Probe)
)

// RunOptions control a run.
type RunOptions struct {
	// TempDir is where the private run directory is made; default os.TempDir().
	TempDir string
	// Keep keeps the run directory (sockets, logs, screendump) after a
	// successful run; after a failure it is always kept.
	Keep bool
	// Timeout bounds the whole run; zero means none.
	Timeout time.Duration
	// Inactivity ends the run when neither the disks, the installer's log
	// nor Activity have
	// moved for this long; zero disables the watchdog.
	Inactivity time.Duration
	// Activity is an extra counter that moves when the guest does
	// something, such as bytes the mirror proxy served.
	Activity func() uint64
	// PollInterval is how often block statistics are read; default 1s.
	PollInterval time.Duration
	// ShutdownGrace is how long each step of a graceful stop may take
	// (system_powerdown, then quit); default 5s.
	ShutdownGrace time.Duration
	// SerialLog and AnacondaLog are where the two logs go; default files
	// in the run directory.
	SerialLog, AnacondaLog string
	// OnLine is called with each log line ("serial" or "anaconda").
	OnLine func(source, line string)
	// Log receives kiln's own progress messages.
	Log *slog.Logger
	// Accel is recorded in the result.
	Accel AccelReport
	// StartTimeout bounds QEMU's start, until it has connected its
	// sockets; default 30s.
	StartTimeout time.Duration
	// OnStart is called with QEMU's process id once it runs.
	OnStart func(pid int)
	// Ready, for a boot check, is called with each log line and with a
	// line still being written: a login prompt ends in no newline. When
	// it returns true the VM is stopped and the run ends in OutcomeReady,
	// a success.
	Ready func(source, text string) bool
	// Fatal, when set, is asked about each log line too: an installer's
	// own failures (d-i's), beyond the ones kiln knows for Anaconda and
	// the kernel.
	Fatal func(source, line string) bool
	// Probe, for a boot check, runs alongside the VM until its context
	// ends; when it returns true the run ends in OutcomeReady, with its
	// string as the detail.
	Probe func(ctx context.Context) (string, bool)
}

type fatalLine struct {
	outcome Outcome
	line    string
}

// BlockTotals are the disks' I/O counters, summed.
type BlockTotals struct {
	ReadOps    uint64 `json:"read_ops"`
	WriteOps   uint64 `json:"write_ops"`
	ReadBytes  uint64 `json:"read_bytes"`
	WriteBytes uint64 `json:"write_bytes"`
}

// Result describes a finished run.
type Result struct {
	Outcome     Outcome       `json:"outcome"`
	Detail      string        `json:"detail,omitempty"` // the fatal line, the shutdown reason, ...
	Duration    time.Duration `json:"duration_ns"`      // from QEMU's start to its exit
	Accel       AccelReport   `json:"accel"`
	QEMUVersion string        `json:"qemu_version,omitempty"`
	RunDir      string        `json:"run_dir"`
	SerialLog   string        `json:"serial_log"`
	AnacondaLog string        `json:"anaconda_log"`
	Screendump  string        `json:"screendump,omitempty"`
	Cmdline     []string      `json:"cmdline"`
	Repro       string        `json:"repro"`
	Stderr      string        `json:"stderr,omitempty"` // the end of QEMU's stderr
	Disk        BlockTotals   `json:"disk"`             // as last read, after a guest shutdown
}

// Error is returned by Run when the VM did not end in a guest poweroff.
type Error struct{ Result *Result }

func (e *Error) Error() string {
	r := e.Result
	var sb strings.Builder
	fmt.Fprintf(&sb, "vm %s", r.Outcome)
	if r.Detail != "" {
		fmt.Fprintf(&sb, ": %s", r.Detail)
	}
	if r.Stderr != "" {
		fmt.Fprintf(&sb, "\nqemu said: %s", strings.TrimSpace(r.Stderr))
	}
	fmt.Fprintf(&sb, "\nserial log: %s\ninstaller log: %s", r.SerialLog, r.AnacondaLog)
	if r.Screendump != "" {
		fmt.Fprintf(&sb, "\nscreendump: %s", r.Screendump)
	}
	fmt.Fprintf(&sb, "\nreproduce with: (cd %s && %s)", shellQuote(r.RunDir), r.Repro)
	return sb.String()
}

// Run starts the VM described by cfg and supervises it to the end. It
// returns the result, and a non-nil *Error unless the guest powered off.
// cfg.RunDir is set to the private directory made for the run.
func Run(ctx context.Context, cfg *Config, opts RunOptions) (*Result, error) {
	s := &supervisor{cfg: cfg, opts: opts, log: opts.Log}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.opts.PollInterval == 0 {
		s.opts.PollInterval = time.Second
	}
	if s.opts.ShutdownGrace == 0 {
		s.opts.ShutdownGrace = 5 * time.Second
	}
	if s.opts.StartTimeout == 0 {
		s.opts.StartTimeout = 30 * time.Second
	}
	return s.run(ctx)
}

type supervisor struct {
	cfg  *Config
	opts RunOptions
	log  *slog.Logger
	res  *Result

	cmd     *exec.Cmd
	exited  chan struct{} // closed when QEMU has exited
	waitErr error
	stderr  *tailBuffer
	qmp     *qmp.Client

	fatal chan fatalLine // the first fatal log line
	lines chan struct{}  // a log line arrived; for draining after a fatal one
	// logLines counts the installer log's lines: an installer that
	// writes its log is alive, though it may touch neither disk nor
	// network for minutes (d-i while it detects hardware).
	logLines atomic.Uint64
	ready    chan string // what a boot check saw
}

// After a fatal line, the rest of the report is still on its way: a
// traceback runs to many lines, and the installer writes the same line to
// the console and to its log port. The run ends once the logs have been
// quiet for logQuiet, or after logDrainMax at the most.
const (
	logQuiet    = 300 * time.Millisecond
	logDrainMax = 3 * time.Second
)

// drainLogs waits until no log line has arrived for logQuiet.
func (s *supervisor) drainLogs() {
	limit := time.NewTimer(logDrainMax)
	defer limit.Stop()
	for {
		quiet := time.NewTimer(logQuiet)
		select {
		case <-s.lines:
			quiet.Stop()
		case <-quiet.C:
			return
		case <-limit.C:
			quiet.Stop()
			return
		case <-s.exited:
			quiet.Stop()
			return
		}
	}
}

func (s *supervisor) run(ctx context.Context) (*Result, error) {
	dir, err := os.MkdirTemp(s.opts.TempDir, "kiln-vm-")
	if err != nil {
		return nil, fmt.Errorf("qemu: making the run directory: %w", err)
	}
	// MkdirTemp makes it 0700: the sockets inside are private to this user.
	s.cfg.RunDir = dir
	s.res = &Result{RunDir: dir, Accel: s.opts.Accel}
	s.res.SerialLog = orDefault(s.opts.SerialLog, filepath.Join(dir, "serial.log"))
	s.res.AnacondaLog = orDefault(s.opts.AnacondaLog, filepath.Join(dir, "anaconda.log"))
	argv, err := s.cfg.Cmdline()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.res.Cmdline = argv
	s.res.Repro = s.cfg.Repro()
	res, err := s.supervise(ctx, argv)
	if res == nil || (err == nil && !s.opts.Keep) {
		// Nothing ran (res == nil), or it went well: nothing to keep.
		os.RemoveAll(dir)
	} else {
		// Sockets are useless after the run; the logs and screen stay.
		for _, f := range []string{s.cfg.qmpSocket(), s.cfg.serialSocket(), s.cfg.anacondaSocket()} {
			os.Remove(f)
		}
	}
	return res, err
}

func orDefault(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// fail finishes the result as a failure. When QEMU itself failed, its
// last words on stderr are the most useful part, so wait for them briefly.
func (s *supervisor) fail(o Outcome, detail string) (*Result, error) {
	s.res.Outcome, s.res.Detail = o, detail
	if o == OutcomeQEMUFailed && s.exited != nil {
		t := time.NewTimer(2 * time.Second)
		select {
		case <-s.exited:
		case <-t.C:
		}
		t.Stop()
	}
	if s.stderr != nil && s.res.Stderr == "" {
		s.res.Stderr = s.stderr.String()
	}
	return s.res, &Error{Result: s.res}
}

func (s *supervisor) supervise(ctx context.Context, argv []string) (*Result, error) {
	if s.cfg.Firmware.Kind == UEFI {
		if err := fileutil.Copy(s.cfg.Firmware.Vars, s.cfg.VarsPath(), os.O_EXCL, 0o600); err != nil {
			return nil, fmt.Errorf("qemu: copying the UEFI variable store: %w", err)
		}
	}
	lns := map[string]net.Listener{}
	for name, path := range map[string]string{"qmp": s.cfg.qmpSocket(), "serial": s.cfg.serialSocket(), "anaconda": s.cfg.anacondaSocket()} {
		l, err := net.Listen("unix", path)
		if err != nil {
			closeAll(lns)
			return nil, fmt.Errorf("qemu: listening on %s: %w", path, err)
		}
		lns[name] = l
	}
	defer closeAll(lns)

	serialLog, err := os.Create(s.res.SerialLog)
	if err != nil {
		return nil, fmt.Errorf("qemu: creating the serial log: %w", err)
	}
	defer serialLog.Close()
	anaLog, err := os.Create(s.res.AnacondaLog)
	if err != nil {
		return nil, fmt.Errorf("qemu: creating the installer log: %w", err)
	}
	defer anaLog.Close()

	if err := s.start(argv); err != nil {
		return nil, err
	}
	start := time.Now()
	defer func() { s.res.Duration = time.Since(start) }()
	// From here on, whatever happens, QEMU must be gone when we return.
	defer s.kill()

	// QEMU connects to each socket while it starts. If it exits first
	// (a bad option, a missing file), stop waiting.
	conns := map[string]net.Conn{}
	if s.opts.OnStart != nil {
		s.opts.OnStart(s.cmd.Process.Pid)
	}
	acceptCtx, cancelAccept := context.WithTimeout(ctx, s.opts.StartTimeout)
	defer cancelAccept()
	go func() {
		select {
		case <-s.exited:
		case <-acceptCtx.Done():
		}
		closeAll(lns)
	}()
	for _, name := range []string{"anaconda", "serial", "qmp"} {
		c, err := lns[name].Accept()
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			if ctx.Err() != nil {
				return s.fail(OutcomeCancelled, "cancelled while QEMU started")
			}
			select {
			case <-s.exited:
			default:
				s.kill()
				s.res.Stderr = s.stderr.String()
				return s.fail(OutcomeQEMUFailed, fmt.Sprintf("QEMU did not connect its sockets within %v", s.opts.StartTimeout))
			}
			s.res.Stderr = s.stderr.String()
			return s.fail(OutcomeQEMUFailed, fmt.Sprintf("QEMU did not start (%v)", s.waitErr))
		}
		conns[name] = c
	}
	cancelAccept()

	s.fatal = make(chan fatalLine, 1)
	s.lines = make(chan struct{}, 1)
	s.ready = make(chan string, 1)
	var readers sync.WaitGroup
	readers.Add(2)
	go s.readLog(&readers, "serial", conns["serial"], serialLog)
	go s.readLog(&readers, "anaconda", conns["anaconda"], anaLog)
	defer func() {
		// The readers end when QEMU closes its side.
		s.kill()
		conns["serial"].Close()
		conns["anaconda"].Close()
		readers.Wait()
	}()

	hctx, hcancel := context.WithTimeout(ctx, s.opts.StartTimeout)
	client, greeting, err := qmp.Connect(hctx, conns["qmp"])
	hcancel()
	if err != nil {
		return s.fail(OutcomeQEMUFailed, "QMP handshake: "+err.Error())
	}
	s.qmp = client
	defer client.Close()
	s.res.QEMUVersion = greeting.Version()
	events := client.Subscribe()
	if err := client.Cont(ctx); err != nil {
		return s.fail(OutcomeQEMUFailed, "resuming the VM: "+err.Error())
	}
	s.log.Debug("vm running", "accel", s.cfg.Accel, "run_dir", s.cfg.RunDir)
	return s.watch(ctx, events)
}

// start runs QEMU in its own process group, tied to this process's life.
func (s *supervisor) start(argv []string) error {
	s.exited = make(chan struct{})
	s.stderr = &tailBuffer{max: 8 << 10}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that started the child exits, so
		// that thread must live exactly as long as the child.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout = s.stderr
		cmd.Stderr = s.stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("qemu: starting %s: %w", argv[0], err)
			close(s.exited)
			return
		}
		s.cmd = cmd
		started <- nil
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	return <-started
}

// kill ends QEMU's whole process group at once and waits for it.
func (s *supervisor) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
}

// stop shuts the VM down gracefully where it can: system_powerdown, then
// quit, then SIGKILL, each step given ShutdownGrace.
func (s *supervisor) stop(graceful bool) {
	wait := func() bool {
		t := time.NewTimer(s.opts.ShutdownGrace)
		defer t.Stop()
		select {
		case <-s.exited:
			return true
		case <-t.C:
			return false
		}
	}
	if graceful {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownGrace)
		err := s.qmp.SystemPowerdown(ctx)
		cancel()
		if err == nil && wait() {
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownGrace)
	err := s.qmp.Quit(ctx)
	cancel()
	if err == nil && wait() {
		return
	}
	s.kill()
}

// screendump saves the screen; failures to do so are logged, not fatal.
func (s *supervisor) screendump() {
	path := filepath.Join(s.cfg.RunDir, "screen.png")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.qmp.Screendump(ctx, path); err != nil {
		s.log.Warn("could not take a screendump", "err", err)
		return
	}
	s.res.Screendump = path
}

// watch runs until the VM ends.
func (s *supervisor) watch(ctx context.Context, events <-chan qmp.Event) (*Result, error) {
	var timeout <-chan time.Time
	if s.opts.Timeout > 0 {
		t := time.NewTimer(s.opts.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	var poll <-chan time.Time
	if s.opts.Inactivity > 0 {
		t := time.NewTicker(s.opts.PollInterval)
		defer t.Stop()
		poll = t.C
	}
	lastActivity, lastCount := time.Now(), uint64(0)
	if s.opts.Probe != nil {
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			if d, ok := s.opts.Probe(pctx); ok {
				s.signalReady(d)
			}
		}()
	}
	var shutdownReason string
	for {
		select {
		case d := <-s.ready:
			s.stop(false)
			s.res.Outcome, s.res.Detail, s.res.Stderr = OutcomeReady, d, ""
			return s.res, nil
		case ev, ok := <-events:
			if !ok {
				events = nil // QMP closed: QEMU is exiting
				continue
			}
			switch ev.Name {
			case "SHUTDOWN":
				var d qmp.ShutdownEvent
				ev.Decode(&d)
				if shutdownReason != "" {
					continue // our own quit after the guest's shutdown
				}
				shutdownReason = d.Reason
				s.log.Debug("vm shutdown", "reason", d.Reason)
				if d.Guest {
					// QEMU paused (shutdown=pause): read the final
					// counters, then let it go.
					s.readBlockTotals(ctx)
					s.stop(false)
				}
			case "GUEST_PANICKED":
				s.screendump()
				s.stop(false)
				return s.fail(OutcomeCrash, "the guest kernel panicked")
			case "BLOCK_IO_ERROR":
				var d qmp.BlockIOErrorEvent
				ev.Decode(&d)
				detail := fmt.Sprintf("%s error on %s%s: %s", d.Operation, d.Device, d.NodeName, d.Reason)
				if d.NoSpace {
					detail += " (the host disk is full)"
				}
				s.screendump()
				s.stop(false)
				return s.fail(OutcomeIOError, detail)
			case "RESET", "STOP":
				s.log.Debug("vm event", "event", ev.Name)
			}
		case f := <-s.fatal:
			// The installer is dead: a graceful powerdown would only wait
			// for it, so quit as soon as its last words are in the logs.
			s.drainLogs()
			s.screendump()
			s.stop(false)
			return s.fail(f.outcome, f.line)
		case <-timeout:
			s.screendump()
			s.stop(false)
			return s.fail(OutcomeTimeout, fmt.Sprintf("still running after %v", s.opts.Timeout))
		case <-poll:
			n, err := s.activity(ctx)
			if err != nil {
				continue // QEMU is going away; its exit is handled below
			}
			if n != lastCount {
				lastCount, lastActivity = n, time.Now()
			} else if time.Since(lastActivity) >= s.opts.Inactivity {
				s.screendump()
				s.stop(false)
				return s.fail(OutcomeInactivity, fmt.Sprintf("no disk, network or installer log activity for %v", s.opts.Inactivity))
			}
		case <-ctx.Done():
			s.stop(true)
			return s.fail(OutcomeCancelled, ctx.Err().Error())
		case <-s.exited:
			s.res.Stderr = s.stderr.String()
			// The SHUTDOWN event may still be queued behind the exit.
			for ev := range drain(events) {
				if ev.Name == "SHUTDOWN" && shutdownReason == "" {
					var d qmp.ShutdownEvent
					ev.Decode(&d)
					shutdownReason = d.Reason
				}
			}
			switch shutdownReason {
			case "guest-shutdown":
				s.res.Outcome, s.res.Detail = OutcomePoweroff, shutdownReason
				s.res.Stderr = ""
				return s.res, nil
			case "guest-reset":
				return s.fail(OutcomeReset, "the guest rebooted instead of powering off")
			case "":
				return s.fail(OutcomeQEMUFailed, fmt.Sprintf("QEMU exited (%v) without a guest shutdown", s.waitErr))
			}
			return s.fail(OutcomeQEMUFailed, "QEMU shut down: "+shutdownReason)
		}
	}
}

// drain yields what is left on events until the QMP connection closes,
// which it does as QEMU exits.
func drain(events <-chan qmp.Event) <-chan qmp.Event {
	out := make(chan qmp.Event, qmp.EventBuffer)
	go func() {
		defer close(out)
		if events == nil {
			return
		}
		t := time.NewTimer(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					return
				}
				out <- ev
			case <-t.C:
				return
			}
		}
	}()
	return out
}

func (s *supervisor) readBlockTotals(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stats, err := s.qmp.QueryBlockstats(ctx)
	if err != nil {
		return
	}
	var t BlockTotals
	for _, st := range stats {
		t.ReadOps += st.Stats.RdOperations
		t.WriteOps += st.Stats.WrOperations
		t.ReadBytes += st.Stats.RdBytes
		t.WriteBytes += st.Stats.WrBytes
	}
	s.res.Disk = t
}

// activity sums the disks' operations and the extra counter.
func (s *supervisor) activity(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stats, err := s.qmp.QueryBlockstats(ctx)
	if err != nil {
		return 0, err
	}
	n := s.logLines.Load()
	for _, st := range stats {
		n += st.Stats.RdOperations + st.Stats.WrOperations + st.Stats.FlushOps
	}
	if s.opts.Activity != nil {
		n += s.opts.Activity()
	}
	return n, nil
}

// readLog copies a log stream to its file line by line, hands each line
// to OnLine and the failure monitor, and reports the first fatal line.
// A line still being written is shown to Ready, which may be waiting for
// a prompt.
func (s *supervisor) readLog(wg *sync.WaitGroup, source string, r io.Reader, w io.Writer) {
	defer wg.Done()
	mon := &FailureMonitor{}
	buf := make([]byte, 32<<10)
	var pending []byte
	for {
		n, err := r.Read(buf)
		pending = append(pending, buf[:n]...)
		for {
			i := bytes.IndexByte(pending, '\n')
			if i < 0 && (len(pending) < maxLine || err != nil) {
				break
			}
			if i < 0 {
				i = len(pending) - 1
			}
			s.line(source, string(pending[:i+1]), w, mon)
			pending = pending[i+1:]
		}
		if err != nil {
			if len(pending) > 0 {
				s.line(source, string(pending), w, mon)
			}
			return
		}
		if len(pending) > 0 && s.opts.Ready != nil && s.opts.Ready(source, strings.TrimRight(string(pending), "\r")) {
			s.signalReady(strings.TrimSpace(string(pending)))
		}
	}
}

// maxLine is where a line with no end is cut, so a guest cannot make kiln
// hold an unbounded line.
const maxLine = 64 << 10

func (s *supervisor) line(source, line string, w io.Writer, mon *FailureMonitor) {
	io.WriteString(w, line)
	select {
	case s.lines <- struct{}{}:
	default:
	}
	text := strings.TrimRight(line, "\r\n")
	if source == "anaconda" {
		s.logLines.Add(1)
	}
	if s.opts.OnLine != nil {
		s.opts.OnLine(source, text)
	}
	if s.opts.Ready != nil && s.opts.Ready(source, text) {
		s.signalReady(strings.TrimSpace(text))
	}
	var o Outcome
	switch {
	case mon.Panic(text):
		o = OutcomeCrash
	case mon.Fatal(text), s.opts.Fatal != nil && s.opts.Fatal(source, text):
		o = OutcomeInstallerError
	}
	if o != "" {
		select {
		case s.fatal <- fatalLine{o, text}:
		default:
		}
	}
}

func (s *supervisor) signalReady(detail string) {
	select {
	case s.ready <- detail:
	default:
	}
}

func closeAll(lns map[string]net.Listener) {
	for _, l := range lns {
		l.Close()
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
