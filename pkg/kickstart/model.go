package kickstart

import (
	"strconv"
	"strings"
)

// Commands returns the commands with any of the given names (all commands
// when none are given), in file order.
func (f *File) Commands(names ...string) []*Command {
	var cs []*Command
	for _, n := range f.Nodes {
		c, ok := n.(*Command)
		if !ok {
			continue
		}
		if len(names) == 0 {
			cs = append(cs, c)
			continue
		}
		for _, name := range names {
			if c.Name == name {
				cs = append(cs, c)
				break
			}
		}
	}
	return cs
}

// Sections returns the sections of the given kinds (all when none given).
func (f *File) Sections(kinds ...SectionKind) []*Section {
	var ss []*Section
	for _, n := range f.Nodes {
		s, ok := n.(*Section)
		if !ok {
			continue
		}
		if len(kinds) == 0 {
			ss = append(ss, s)
			continue
		}
		for _, k := range kinds {
			if s.Kind == k {
				ss = append(ss, s)
				break
			}
		}
	}
	return ss
}

func (f *File) last(names ...string) *Command {
	cs := f.Commands(names...)
	if len(cs) == 0 {
		return nil
	}
	return cs[len(cs)-1]
}

// Source is the installation source: url, cdrom, harddrive, nfs, liveimg
// or one of the ostree/bootc sources.
type Source struct {
	Kind        string // the command name
	URL         string // --url, or the nfs/harddrive location
	Mirrorlist  string
	Metalink    string
	Proxy       string
	NoVerifySSL bool
	Command     *Command
}

var sourceCommands = []string{"url", "cdrom", "harddrive", "nfs", "liveimg", "hmc", "ostreesetup", "ostreecontainer", "bootc"}

// InstallSource returns the installation source, or nil when the kickstart
// names none (Anaconda then uses inst.repo= or the boot media).
func (f *File) InstallSource() *Source {
	c := f.last(sourceCommands...)
	if c == nil {
		return nil
	}
	s := &Source{Kind: c.Name, Command: c}
	s.URL, _ = c.Value("--url")
	s.Mirrorlist, _ = c.Value("--mirrorlist")
	s.Metalink, _ = c.Value("--metalink")
	s.Proxy, _ = c.Value("--proxy")
	s.NoVerifySSL = c.Has("--noverifyssl")
	switch c.Name {
	case "nfs":
		srv, _ := c.Value("--server")
		dir, _ := c.Value("--dir")
		s.URL = "nfs:" + srv + ":" + dir
	case "harddrive":
		part, _ := c.Value("--partition")
		dir, _ := c.Value("--dir")
		s.URL = "hd:" + part + ":" + dir
	case "ostreesetup":
		s.URL, _ = c.Value("--url")
	}
	return s
}

// Repo is a repo command.
type Repo struct {
	Name        string
	BaseURL     string
	Mirrorlist  string
	Metalink    string
	Proxy       string
	Cost        int
	Install     bool // --install: also write a .repo file to the installed system
	NoVerifySSL bool
	Includepkgs []string
	Excludepkgs []string
	Command     *Command
}

// Repos returns the repo commands in order.
func (f *File) Repos() []Repo {
	var rs []Repo
	for _, c := range f.Commands("repo") {
		r := Repo{Command: c}
		r.Name, _ = c.Value("--name")
		r.BaseURL, _ = c.Value("--baseurl")
		r.Mirrorlist, _ = c.Value("--mirrorlist")
		r.Metalink, _ = c.Value("--metalink")
		r.Proxy, _ = c.Value("--proxy")
		if v, ok := c.Value("--cost"); ok {
			r.Cost, _ = strconv.Atoi(v)
		}
		r.Install = c.Has("--install")
		r.NoVerifySSL = c.Has("--noverifyssl")
		if v, ok := c.Value("--includepkgs"); ok {
			r.Includepkgs = commaList(v)
		}
		if v, ok := c.Value("--excludepkgs"); ok {
			r.Excludepkgs = commaList(v)
		}
		rs = append(rs, r)
	}
	return rs
}

func commaList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Packages is the merged content of every %packages section.
type Packages struct {
	Environment    string   // @^name
	Groups         []string // @name, with any options as written
	Packages       []string
	ExcludedGroups []string
	Excluded       []string
	NoCore         bool
	ExcludeDocs    bool
	IgnoreMissing  bool
	Sections       []*Section
}

// Packages returns the package selection, or nil when there is no
// %packages section.
func (f *File) Packages() *Packages {
	ss := f.Sections(SectionPackages)
	if len(ss) == 0 {
		return nil
	}
	p := &Packages{Sections: ss}
	for _, s := range ss {
		p.NoCore = p.NoCore || s.Has("--nocore")
		p.ExcludeDocs = p.ExcludeDocs || s.Has("--excludedocs")
		p.IgnoreMissing = p.IgnoreMissing || s.Has("--ignoremissing")
		for _, l := range s.Body {
			t := strings.TrimSpace(l.content())
			if i := strings.IndexByte(t, '#'); i >= 0 {
				t = strings.TrimSpace(t[:i])
			}
			switch {
			case t == "":
			case strings.HasPrefix(t, "@^"):
				p.Environment = strings.Fields(t[2:])[0]
			case strings.HasPrefix(t, "-@"):
				p.ExcludedGroups = append(p.ExcludedGroups, t[2:])
			case strings.HasPrefix(t, "@"):
				p.Groups = append(p.Groups, t[1:])
			case strings.HasPrefix(t, "-"):
				p.Excluded = append(p.Excluded, t[1:])
			default:
				p.Packages = append(p.Packages, t)
			}
		}
	}
	return p
}

// Script is a %pre, %pre-install, %post, %onerror or %traceback section.
type Script struct {
	Kind        SectionKind
	Interpreter string // empty means /bin/sh
	Log         string
	NoChroot    bool
	ErrorOnFail bool
	Body        string
	Section     *Section
}

// Scripts returns the scripts in order.
func (f *File) Scripts() []Script {
	var out []Script
	for _, s := range f.Sections() {
		if !s.isScript() {
			continue
		}
		sc := Script{Kind: s.Kind, Section: s, Body: s.Text()}
		sc.Interpreter, _ = s.Value("--interpreter")
		sc.Log, _ = s.Value("--log")
		sc.NoChroot = s.Has("--nochroot")
		sc.ErrorOnFail = s.Has("--erroronfail")
		out = append(out, sc)
	}
	return out
}

// RootPW is the rootpw command. Password is a secret: never log it.
type RootPW struct {
	Password  string
	IsCrypted bool
	Lock      bool
	Command   *Command
}

// RootPW returns the root password settings, or nil.
func (f *File) RootPW() *RootPW {
	c := f.last("rootpw")
	if c == nil {
		return nil
	}
	r := &RootPW{Command: c, IsCrypted: c.Has("--iscrypted"), Lock: c.Has("--lock")}
	if len(c.Positionals) > 0 {
		r.Password = c.Positionals[0]
	}
	return r
}

// User is a user command. Password is a secret.
type User struct {
	Name      string
	Password  string
	IsCrypted bool
	Lock      bool
	Groups    []string
	Homedir   string
	Shell     string
	UID, GID  string
	Gecos     string
	Command   *Command
}

// Users returns the user commands in order.
func (f *File) Users() []User {
	var us []User
	for _, c := range f.Commands("user") {
		u := User{Command: c, IsCrypted: c.Has("--iscrypted"), Lock: c.Has("--lock")}
		u.Name, _ = c.Value("--name")
		u.Password, _ = c.Value("--password")
		if g, ok := c.Value("--groups"); ok {
			u.Groups = commaList(g)
		}
		u.Homedir, _ = c.Value("--homedir")
		u.Shell, _ = c.Value("--shell")
		u.UID, _ = c.Value("--uid")
		u.GID, _ = c.Value("--gid")
		u.Gecos, _ = c.Value("--gecos")
		us = append(us, u)
	}
	return us
}

// shutdownCommands are the ways a kickstart says how the install ends.
var shutdownCommands = []string{"poweroff", "reboot", "halt", "shutdown"}

// Shutdown returns how the install ends: "poweroff", "reboot", "halt" or
// "shutdown" (which Anaconda treats as poweroff), or "" when the kickstart
// does not say, in which case Anaconda waits for a key press.
func (f *File) Shutdown() (string, *Command) {
	c := f.last(shutdownCommands...)
	if c == nil {
		return "", nil
	}
	return c.Name, c
}

// Partition is a part command.
type Partition struct {
	MountPoint string
	SizeMiB    int
	Grow       bool
	FSType     string
	OnDisk     string
	Command    *Command
}

// Partitioning is the disk layout the kickstart asks for.
type Partitioning struct {
	ZeroMBR    bool
	ClearPart  *Command
	AutoPart   *Command
	ReqPart    *Command
	IgnoreDisk *Command
	Partitions []Partition
	LogVols    []*Command
	VolGroups  []*Command
	Raids      []*Command
}

// Partitioning returns the partitioning commands.
func (f *File) Partitioning() Partitioning {
	p := Partitioning{
		ZeroMBR:    f.last("zerombr") != nil,
		ClearPart:  f.last("clearpart"),
		AutoPart:   f.last("autopart"),
		ReqPart:    f.last("reqpart"),
		IgnoreDisk: f.last("ignoredisk"),
		LogVols:    f.Commands("logvol"),
		VolGroups:  f.Commands("volgroup"),
		Raids:      f.Commands("raid"),
	}
	for _, c := range f.Commands("part", "partition") {
		pt := Partition{Command: c, Grow: c.Has("--grow")}
		if len(c.Positionals) > 0 {
			pt.MountPoint = c.Positionals[0]
		}
		if v, ok := c.Value("--size"); ok {
			pt.SizeMiB, _ = strconv.Atoi(v)
		}
		pt.FSType, _ = c.Value("--fstype")
		pt.OnDisk, _ = c.Value("--ondisk")
		p.Partitions = append(p.Partitions, pt)
	}
	return p
}
