package anaconda

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-build/kiln/pkg/kickstart"
	"github.com/kiln-build/kiln/pkg/treeinfo"
)

// Installer carries out a kickstart into a mounted target root, as
// Anaconda does after partitioning: packages, system configuration, %post
// scripts, and Anaconda's own copies of the kickstart.
type Installer struct {
	KS       *kickstart.File
	Original []byte // the kickstart as it arrived, for /root/original-ks.cfg
	Root     string // the target's root: Anaconda's physical_root, /mnt/sysimage
	// SystemRoot is Anaconda's system_root (/mnt/sysroot): the same tree
	// bind-mounted, where %post is chrooted and which ANA_INSTALL_PATH
	// names. Empty means Root.
	SystemRoot string
	Client     *http.Client
	Log        io.Writer // receives lines in Anaconda's log format
	Proxy      string    // inst.proxy=, used when a repo names none
	InstRepo   string    // inst.repo=, as a URL the client reads (http:, file:)
	Media      string    // where the boot media is mounted, or ""
}

func (in *Installer) systemRoot() string {
	if in.SystemRoot != "" {
		return in.SystemRoot
	}
	return in.Root
}

// Fatal is an installation error; its message is the line Anaconda would
// print, which kiln's failure monitor knows.
type Fatal struct{ Msg string }

func (f *Fatal) Error() string { return f.Msg }

func (in *Installer) logf(level, format string, args ...any) {
	fmt.Fprintf(in.Log, "%s %s anaconda: %s\n", time.Now().UTC().Format("15:04:05,000"), level, fmt.Sprintf(format, args...))
}

// NewClient is the installer's HTTP client: through proxy when it is set,
// and able to read file: URLs, which is how Anaconda reads repositories on
// the install media it has mounted.
func NewClient(proxy string, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if u, err := url.Parse(proxy); proxy != "" && err == nil {
		tr.Proxy = http.ProxyURL(u)
	}
	tr.RegisterProtocol("file", http.NewFileTransport(http.Dir("/")))
	return &http.Client{Transport: tr, Timeout: timeout}
}

func (in *Installer) client(proxy string) *http.Client {
	if proxy == "" {
		proxy = in.Proxy
	}
	if proxy == "" {
		return in.Client
	}
	return NewClient(proxy, in.Client.Timeout)
}

// MediaRepo is where Anaconda mounts the install media it booted from.
const MediaRepo = "/run/install/repo"

// baseRepos loads the installation source: the kickstart's url (by
// --url or --mirrorlist), or, for cdrom, harddrive or no source at all,
// inst.repo= or the install media. A tree whose .treeinfo lists variants
// (a DVD: BaseOS and AppStream) gives a repository for each, as Anaconda
// adds them.
func (in *Installer) baseRepos(ctx context.Context) ([]*Repo, error) {
	src := in.KS.InstallSource()
	var base, proxy string
	switch {
	case src != nil && src.Kind == "url":
		proxy = src.Proxy
		base = src.URL
		if base == "" && src.Mirrorlist != "" {
			r, err := in.fromMirrorlist(ctx, "anaconda", src.Mirrorlist, proxy)
			if err != nil {
				return nil, &Fatal{fmt.Sprintf("packaging: base repo (%s) not valid -- %v", src.Mirrorlist, err)}
			}
			return []*Repo{r}, nil
		}
	case src != nil && src.Kind != "cdrom" && src.Kind != "harddrive":
		return nil, &Fatal{fmt.Sprintf("packaging: the test installer does not install from %s", src.Kind)}
	case in.InstRepo != "":
		base = in.InstRepo
	case in.Media != "":
		base = "file://" + in.Media
	}
	if base == "" {
		return nil, nil
	}
	client := in.client(proxy)
	variants := treeVariants(ctx, client, base)
	var repos []*Repo
	for _, v := range variants {
		name, u := "anaconda", base
		if v != "." {
			name, u = v, strings.TrimSuffix(base, "/")+"/"+v
		}
		r, err := LoadRepo(ctx, client, name, u)
		if err != nil {
			return nil, &Fatal{fmt.Sprintf("packaging: base repo (%s) not valid -- %v", u, err)}
		}
		r.client = client
		repos = append(repos, r)
	}
	return repos, nil
}

// treeVariants reads the repository directories a tree's .treeinfo
// lists; a tree without one, or with none, is a repository itself (".").
func treeVariants(ctx context.Context, client *http.Client, base string) []string {
	b, err := Fetch(ctx, client, strings.TrimSuffix(base, "/")+"/.treeinfo")
	if err != nil {
		return []string{"."}
	}
	if v := treeinfo.Parse(string(b)).Variants; len(v) > 0 {
		return v
	}
	return []string{"."}
}

// fromMirrorlist loads the first repository of a plain mirror list that
// answers, as dnf does; metalinks are not read.
func (in *Installer) fromMirrorlist(ctx context.Context, name, list, proxy string) (*Repo, error) {
	client := in.client(proxy)
	b, err := Fetch(ctx, client, list)
	if err != nil {
		return nil, fmt.Errorf("mirror list: %w", err)
	}
	var errs []error
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		r, err := LoadRepo(ctx, client, name, l)
		if err == nil {
			r.client = client
			return r, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("mirror list %s names no mirrors", list)
	}
	return nil, errors.Join(errs...)
}

// Packages installs the %packages selection from the url and repo lines.
func (in *Installer) Packages(ctx context.Context) error {
	repos, err := in.baseRepos(ctx)
	if err != nil {
		return err
	}
	for _, kr := range in.KS.Repos() {
		var r *Repo
		var err error
		switch {
		case kr.BaseURL != "":
			client := in.client(kr.Proxy)
			if r, err = LoadRepo(ctx, client, kr.Name, kr.BaseURL); err == nil {
				r.client = client
			}
		case kr.Mirrorlist != "":
			r, err = in.fromMirrorlist(ctx, kr.Name, kr.Mirrorlist, kr.Proxy)
		default:
			continue
		}
		if err != nil {
			return &Fatal{fmt.Sprintf("The following error occurred while installing.  This is a fatal error and installation will be aborted. Failed to set up repo %s: %v", kr.Name, err)}
		}
		repos = append(repos, r)
	}
	sel := in.KS.Packages()
	if sel == nil {
		return nil
	}
	var groups []string
	if !sel.NoCore {
		groups = append(groups, "core")
	}
	for _, g := range sel.Groups {
		groups = append(groups, strings.Fields(g)[0])
	}
	if sel.Environment != "" {
		groups = append(groups, sel.Environment)
	}
	names := append([]string(nil), sel.Packages...)
	if k := kernelPackage(repos, sel.Excluded); k != "" {
		names = append(names, k)
	}
	pkgs, err := Resolve(repos, names, dedupe(groups), sel.Excluded, sel.IgnoreMissing)
	var me *MissingError
	if errors.As(err, &me) {
		for _, n := range me.Names {
			in.logf("ERR", "packaging: Missed: NoSuchPackage: %s", n)
		}
		return &Fatal{"The following error occurred while installing.  This is a fatal error and installation will be aborted. Missing packages: " + strings.Join(me.Names, ", ")}
	}
	if err != nil {
		return &Fatal{"The following error occurred while installing.  This is a fatal error and installation will be aborted. " + err.Error()}
	}
	for i, p := range pkgs {
		// Anaconda's own line (pyanaconda/payload/dnf/payload.py and
		// transaction_progress.py on rhel-9), which kiln's progress reads.
		in.logf("INFO", "Installing %s.%s (%d/%d)", p.Name, p.Arch, i+1, len(pkgs))
		client := in.Client
		if p.Repo.client != nil {
			client = p.Repo.client
		}
		if _, err := Install(ctx, client, p, in.Root); err != nil {
			return &Fatal{"The following error occurred while installing.  This is a fatal error and installation will be aborted. " + err.Error()}
		}
		ver, rel, _ := strings.Cut(p.Version, "-")
		if err := in.appendLine(PackageDB, strings.Join([]string{p.Name, p.Epoch, ver, rel, p.Arch}, "\t"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// kernelPackage is the kernel Anaconda adds to every selection (the dnf
// payload's get_kernel_package): "kernel" when a repository has it and
// %packages does not exclude it.
func kernelPackage(repos []*Repo, excluded []string) string {
	for _, x := range excluded {
		if x == "kernel" {
			return ""
		}
	}
	for _, r := range repos {
		if _, ok := r.Packages["kernel"]; ok {
			return "kernel"
		}
	}
	return ""
}

// PackageDB is where the test installer records what it installed, one
// package per line: name, epoch, version, release and arch, separated by
// tabs. It stands in for the rpmdb dnf writes; the fixtures' rpm reads it.
const PackageDB = "/var/lib/rpm/kiln-test-installer.tsv"

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func (in *Installer) write(path, content string, mode os.FileMode) error {
	p := filepath.Join(in.Root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content), mode)
}

func (in *Installer) appendLine(path, line string, mode os.FileMode) error {
	p := filepath.Join(in.Root, path)
	os.MkdirAll(filepath.Dir(p), 0o755)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, mode)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.WriteString(f, line+"\n")
	return err
}

func salt() string {
	b := make([]byte, 12)
	rand.Read(b)
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte(cryptAlphabet[int(c)%len(cryptAlphabet)])
	}
	return sb.String()
}

// Configure writes the files the configuration commands imply: root's
// password, users, time zone, language, keyboard, host name, services,
// SELinux and firewall settings.
func (in *Installer) Configure() error {
	root := "root:x:0:0:root:/root:/bin/bash"
	shadow := "root:!!:19000:0:99999:7:::"
	if r := in.KS.RootPW(); r != nil {
		hash := r.Password
		if !r.IsCrypted || !crypted(hash) {
			hash = SHA512Crypt(r.Password, salt())
		}
		if r.Lock {
			hash = "!" + hash
		}
		shadow = "root:" + hash + ":19000:0:99999:7:::"
	}
	for _, f := range []struct{ path, line string }{{"/etc/passwd", root}, {"/etc/group", "root:x:0:"}, {"/etc/shadow", shadow}} {
		if err := in.prepend(f.path, f.line); err != nil {
			return err
		}
	}
	for i, u := range in.KS.Users() {
		uid := u.UID
		if uid == "" {
			uid = fmt.Sprint(1000 + i)
		}
		home := u.Homedir
		if home == "" {
			home = "/home/" + u.Name
		}
		shell := u.Shell
		if shell == "" {
			shell = "/bin/bash"
		}
		hash := "!!"
		if u.Password != "" {
			hash = u.Password
			if !u.IsCrypted {
				hash = SHA512Crypt(u.Password, salt())
			}
		}
		in.appendLine("/etc/passwd", fmt.Sprintf("%s:x:%s:%s:%s:%s:%s", u.Name, uid, uid, u.Gecos, home, shell), 0o644)
		in.appendLine("/etc/group", fmt.Sprintf("%s:x:%s:", u.Name, uid), 0o644)
		in.appendLine("/etc/shadow", fmt.Sprintf("%s:%s:19000:0:99999:7:::", u.Name, hash), 0o600)
		os.MkdirAll(filepath.Join(in.Root, home), 0o700)
	}
	in.presets()
	for _, c := range in.KS.Commands("timezone", "lang", "keyboard", "network", "services", "selinux", "firewall") {
		switch c.Name {
		case "timezone":
			if len(c.Positionals) > 0 {
				os.MkdirAll(filepath.Join(in.Root, "etc"), 0o755)
				os.Remove(filepath.Join(in.Root, "etc/localtime"))
				os.Symlink("../usr/share/zoneinfo/"+c.Positionals[0], filepath.Join(in.Root, "etc/localtime"))
			}
		case "lang":
			in.write("/etc/locale.conf", "LANG=\""+c.Positionals[0]+"\"\n", 0o644)
		case "keyboard":
			layout, _ := c.Value("--vckeymap")
			if layout == "" && len(c.Positionals) > 0 {
				layout = c.Positionals[0]
			}
			in.write("/etc/vconsole.conf", "KEYMAP=\""+layout+"\"\n", 0o644)
		case "network":
			if h, ok := c.Value("--hostname"); ok {
				in.write("/etc/hostname", h+"\n", 0o644)
			}
		case "services":
			if v, ok := c.Value("--enabled"); ok {
				for _, s := range strings.Split(v, ",") {
					unit := strings.TrimSpace(s) + ".service"
					os.MkdirAll(filepath.Join(in.Root, "etc/systemd/system/multi-user.target.wants"), 0o755)
					os.Symlink("/usr/lib/systemd/system/"+unit, filepath.Join(in.Root, "etc/systemd/system/multi-user.target.wants", unit))
				}
			}
			if v, ok := c.Value("--disabled"); ok {
				for _, s := range strings.Split(v, ",") {
					os.Remove(filepath.Join(in.Root, "etc/systemd/system/multi-user.target.wants", strings.TrimSpace(s)+".service"))
				}
			}
		case "selinux":
			mode := "enforcing"
			switch {
			case c.Has("--disabled"):
				mode = "disabled"
			case c.Has("--permissive"):
				mode = "permissive"
			}
			in.write("/etc/selinux/config", "SELINUX="+mode+"\nSELINUXTYPE=targeted\n", 0o644)
		case "firewall":
			state := "enabled"
			if c.Has("--disabled") {
				state = "disabled"
			}
			in.write("/etc/sysconfig/kiln-firewall", "FIREWALL="+state+"\n", 0o644)
		}
	}
	return nil
}

// presets enables the installed units that the system's preset files
// name, as each package's scriptlet (systemctl preset) does in a real
// install: that is how sshd is enabled on Rocky's @core.
func (in *Installer) presets() {
	files, _ := filepath.Glob(filepath.Join(in.Root, "usr/lib/systemd/system-preset/*.preset"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n") {
			unit, ok := strings.CutPrefix(strings.TrimSpace(line), "enable ")
			if !ok {
				continue
			}
			unit = strings.TrimSpace(unit)
			if _, err := os.Stat(filepath.Join(in.Root, "usr/lib/systemd/system", unit)); err != nil {
				continue
			}
			wants := filepath.Join(in.Root, "etc/systemd/system/multi-user.target.wants")
			os.MkdirAll(wants, 0o755)
			os.Symlink("/usr/lib/systemd/system/"+unit, filepath.Join(wants, unit))
		}
	}
}

// prepend puts line first in a file, as the base system's own entry.
func (in *Installer) prepend(path, line string) error {
	p := filepath.Join(in.Root, path)
	old, _ := os.ReadFile(p)
	mode := os.FileMode(0o644)
	if strings.HasSuffix(path, "shadow") {
		mode = 0o600
	}
	os.MkdirAll(filepath.Dir(p), 0o755)
	return os.WriteFile(p, append([]byte(line+"\n"), old...), mode)
}

// PreScripts runs the %pre scripts, in the installer's own environment,
// before storage is touched, as Anaconda does.
func (in *Installer) PreScripts(ctx context.Context) error {
	return in.scripts(ctx, kickstart.SectionPre, "%pre")
}

// PostScripts runs the %post scripts in order, chrooted into the target
// unless --nochroot, with --log and --erroronfail honoured.
func (in *Installer) PostScripts(ctx context.Context) error {
	return in.scripts(ctx, kickstart.SectionPost, "%post")
}

func (in *Installer) scripts(ctx context.Context, kind kickstart.SectionKind, what string) error {
	n := 0
	for _, s := range in.KS.Scripts() {
		if s.Kind != kind {
			continue
		}
		n++
		interp := s.Interpreter
		if interp == "" {
			interp = "/bin/sh"
		}
		chroot := kind == kickstart.SectionPost && !s.NoChroot
		name := fmt.Sprintf("/tmp/ks-script-%s-%d", what[1:], n)
		// %post scripts are written into the target, %pre ones (which
		// run before there is a target) into the installer's /tmp.
		file := name
		if kind == kickstart.SectionPost {
			file = filepath.Join(in.Root, name)
		}
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(file, []byte(s.Body), 0o700); err != nil {
			return err
		}
		script := file
		if chroot {
			script = name
		}
		cmd := exec.CommandContext(ctx, interp, script)
		if chroot {
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: in.systemRoot()}
			cmd.Dir = "/"
		}
		cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/root", "ANA_INSTALL_PATH=" + in.systemRoot()}
		var out io.Writer = in.Log
		if s.Log != "" {
			lp := s.Log
			if chroot {
				lp = filepath.Join(in.Root, s.Log)
			}
			os.MkdirAll(filepath.Dir(lp), 0o755)
			f, err := os.Create(lp)
			if err != nil {
				return err
			}
			defer f.Close()
			out = f
		}
		cmd.Stdout, cmd.Stderr = out, out
		in.logf("INFO", "Running kickstart %s script(s)", what)
		err := cmd.Run()
		os.Remove(file)
		if err != nil && s.ErrorOnFail {
			return &Fatal{fmt.Sprintf("The following error occurred while installing.  This is a fatal error and installation will be aborted. Error code %v running the kickstart script at line %d", err, s.Section.Header.Num)}
		}
		if err != nil {
			in.logf("WARNING", "%s script at line %d failed: %v (not fatal without --erroronfail)", what, s.Section.Header.Num, err)
		}
	}
	return nil
}

// SaveKickstarts writes Anaconda's copies of the kickstart.
func (in *Installer) SaveKickstarts() error {
	if err := in.write("/root/anaconda-ks.cfg", string(in.KS.Render()), 0o600); err != nil {
		return err
	}
	// The served kickstart's own %post may already have put the user's
	// original in place; Anaconda writes it before %post runs.
	return in.write("/root/original-ks.cfg", string(in.Original), 0o600)
}
