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
)

// Installer carries out a kickstart into a mounted target root, as
// Anaconda does after partitioning: packages, system configuration, %post
// scripts, and Anaconda's own copies of the kickstart.
type Installer struct {
	KS       *kickstart.File
	Original []byte // the kickstart as it arrived, for /root/original-ks.cfg
	Root     string // the target's root
	Client   *http.Client
	Log      io.Writer // receives lines in Anaconda's log format
	Proxy    string    // inst.proxy=, used when a repo names none
}

// Fatal is an installation error; its message is the line Anaconda would
// print, which kiln's failure monitor knows.
type Fatal struct{ Msg string }

func (f *Fatal) Error() string { return f.Msg }

func (in *Installer) logf(level, format string, args ...any) {
	fmt.Fprintf(in.Log, "%s %s anaconda: %s\n", time.Now().UTC().Format("15:04:05,000"), level, fmt.Sprintf(format, args...))
}

func (in *Installer) client(proxy string) *http.Client {
	if proxy == "" {
		proxy = in.Proxy
	}
	if proxy == "" {
		return in.Client
	}
	u, err := url.Parse(proxy)
	if err != nil {
		return in.Client
	}
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}, Timeout: in.Client.Timeout}
}

// Packages installs the %packages selection from the url and repo lines.
func (in *Installer) Packages(ctx context.Context) error {
	var repos []*Repo
	if src := in.KS.InstallSource(); src != nil && src.Kind == "url" && src.URL != "" {
		r, err := LoadRepo(ctx, in.client(src.Proxy), "anaconda", src.URL)
		if err != nil {
			return &Fatal{fmt.Sprintf("packaging: base repo (%s) not valid -- %v", src.URL, err)}
		}
		repos = append(repos, r)
	}
	for _, kr := range in.KS.Repos() {
		if kr.BaseURL == "" {
			continue
		}
		r, err := LoadRepo(ctx, in.client(kr.Proxy), kr.Name, kr.BaseURL)
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
	pkgs, err := Resolve(repos, sel.Packages, dedupe(groups), sel.Excluded, sel.IgnoreMissing)
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
		in.logf("INFO", "Installing %s-%s.noarch (%d/%d)", p.Name, p.Version, i+1, len(pkgs))
		if _, err := Install(ctx, in.Client, p, in.Root); err != nil {
			return &Fatal{"The following error occurred while installing.  This is a fatal error and installation will be aborted. " + err.Error()}
		}
	}
	return nil
}

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

// PostScripts runs the %post scripts in order, chrooted into the target
// unless --nochroot, with --log and --erroronfail honoured.
func (in *Installer) PostScripts(ctx context.Context) error {
	n := 0
	for _, s := range in.KS.Scripts() {
		if s.Kind != kickstart.SectionPost {
			continue
		}
		n++
		interp := s.Interpreter
		if interp == "" {
			interp = "/bin/sh"
		}
		name := fmt.Sprintf("/tmp/ks-script-%d", n)
		if err := in.write(name, s.Body, 0o700); err != nil {
			return err
		}
		script, logPath := name, s.Log
		cmd := exec.CommandContext(ctx, interp, script)
		if !s.NoChroot {
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: in.Root}
			cmd.Dir = "/"
		} else {
			cmd.Args[1] = filepath.Join(in.Root, name)
			cmd.Path = interp
		}
		cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/root", "ANA_INSTALL_PATH=" + in.Root}
		var out io.Writer = in.Log
		if logPath != "" {
			lp := logPath
			if !s.NoChroot {
				lp = filepath.Join(in.Root, logPath)
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
		in.logf("INFO", "Running kickstart %%post script(s)")
		err := cmd.Run()
		os.Remove(filepath.Join(in.Root, name))
		if err != nil && s.ErrorOnFail {
			return &Fatal{fmt.Sprintf("The following error occurred while installing.  This is a fatal error and installation will be aborted. Error code %v running the kickstart script at line %d", err, s.Section.Header.Num)}
		}
		if err != nil {
			in.logf("WARNING", "%%post script at line %d failed: %v (not fatal without --erroronfail)", s.Section.Header.Num, err)
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
