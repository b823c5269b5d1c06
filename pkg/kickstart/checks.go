package kickstart

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// checkState is what the checks remember across lines: which commands were
// seen, and the names that must be unique.
type checkState struct {
	seen   map[string]*Command
	unique map[string]bool
}

// canonical maps aliases to the name conflicts are reported under.
var canonical = map[string]string{
	"part": "partition", "auth": "authconfig",
}

// conflicts lists commands that cannot be combined, as Anaconda enforces.
var conflicts = map[string][]string{
	"autopart":        {"partition", "raid", "volgroup", "logvol", "reqpart", "mount"},
	"partition":       {"autopart", "mount"},
	"logvol":          {"autopart", "mount"},
	"volgroup":        {"autopart", "mount"},
	"raid":            {"autopart", "mount"},
	"reqpart":         {"autopart", "mount"},
	"mount":           {"autopart", "partition", "raid", "volgroup", "logvol", "reqpart"},
	"ostreesetup":     {"ostreecontainer", "bootc"},
	"ostreecontainer": {"ostreesetup", "bootc"},
	"bootc":           {"ostreesetup", "ostreecontainer"},
}

// removedHints say what to do instead of a removed command.
var removedHints = map[string]string{
	"install":     "delete the line: installation is the default, and url, cdrom, harddrive, nfs or liveimg name the source",
	"authconfig":  "use authselect instead",
	"auth":        "use authselect instead",
	"method":      "delete the line and name the source with url, cdrom, harddrive, nfs or liveimg",
	"vnc":         "use the inst.vnc boot option instead",
	"module":      "name modules in %packages as @module:stream/profile instead",
	"autostep":    "delete the line",
	"device":      "delete the line; drivers load automatically",
	"deviceprobe": "delete the line",
	"dmraid":      "delete the line",
	"multipath":   "delete the line",
	"upgrade":     "upgrades through kickstart are not supported; delete the line",
	"btrfs":       "use part, volgroup and logvol with another file system",
}

func (p *parser) parseCommand(c *Command) {
	v := p.f.Version
	spec := p.g.lookup(v, c.Name)
	if spec == nil {
		p.errorf(c.Line, "unknown command: %s", c.Name)
		return
	}
	if spec.removed {
		msg := fmt.Sprintf("%s has been removed from the %s kickstart syntax", c.Name, v)
		if h := removedHints[c.Name]; h != "" {
			msg += ": " + h
		}
		p.errorf(c.Line, "%s", msg)
		return
	}
	if spec.deprecated {
		p.warn(c.Line, "the %s command has been deprecated and no longer has any effect; delete the line", c.Name)
		return
	}
	pos, opts, deprecated, err := parseArgs(spec, c.Args)
	c.Positionals, c.Options = pos, opts
	for _, d := range deprecated {
		if d == "arguments to "+c.Name {
			p.warn(c.Line, "the %s command no longer takes arguments; they have no effect, remove them", c.Name)
			continue
		}
		p.warn(c.Line, "the %s option has been deprecated and no longer has any effect; remove it", d)
	}
	if err != nil {
		p.errorf(c.Line, "%s: %s", c.Name, redact(spec, c, err.Error()))
		return
	}
	name := c.Name
	if n, ok := canonical[name]; ok {
		name = n
	}
	if p.state.seen == nil {
		p.state.seen = map[string]*Command{}
		p.state.unique = map[string]bool{}
	}
	for _, other := range conflicts[name] {
		if p.state.seen[other] != nil {
			p.errorf(c.Line, "the %s and %s commands can't be used at the same time", c.Name, other)
			return
		}
	}
	p.state.seen[name] = c
	if msg := p.checkCommand(name, c); msg != "" {
		p.errorf(c.Line, "%s: %s", c.Name, redact(spec, c, msg))
	}
}

// uniqueName warns when a name that must be unique is seen again.
func (p *parser) uniqueName(c *Command, kind, key, what string) {
	k := kind + "\x00" + key
	if p.state.unique[k] {
		p.warn(c.Line, "%s has already been defined", what)
	}
	p.state.unique[k] = true
}

func countSet(c *Command, names ...string) []string {
	var set []string
	for _, n := range names {
		if given(c, n) {
			set = append(set, n)
		}
	}
	return set
}

// given says whether option name was given a value that counts: a flag,
// or a non-empty value. pykickstart tests its options for truth, so
// "--url=" is no URL (but "--enabled=0" is a string, and true).
func given(c *Command, name string) bool {
	for i := len(c.Options) - 1; i >= 0; i-- {
		o := c.Options[i]
		if o.Name == name || o.Written == name || slices.Contains(o.names, name) {
			return !o.HasValue || o.Value != ""
		}
	}
	return false
}

// givenNumber is given for an int option, where 0 is false too.
func givenNumber(c *Command, name string) bool {
	v, _ := c.Value(name)
	return given(c, name) && strings.Trim(strings.TrimSpace(v), "0_+-") != ""
}

// checkCommand applies the rules that go beyond the option table. It returns
// an error message, or "" when the command is fine; warnings are added
// directly.
func (p *parser) checkCommand(name string, c *Command) string {
	v := p.f.Version
	switch name {
	case "url":
		set := countSet(c, "--url", "--mirrorlist", "--metalink")
		switch {
		case len(set) == 0:
			return "one of --url, --mirrorlist or --metalink must be given"
		case len(set) > 1:
			return "only one of " + strings.Join(set, ", ") + " may be given"
		}
	case "repo":
		set := countSet(c, "--baseurl", "--mirrorlist", "--metalink")
		rn, _ := c.Value("--name")
		switch {
		case len(set) == 0 && v < fedoraVersion(15):
			// From F15 (and RHEL7) a repo may name one the media already has.
			return "one of --baseurl, --mirrorlist or --metalink must be given"
		case len(set) > 1:
			return "only one of " + strings.Join(set, ", ") + " may be given"
		}
		p.uniqueName(c, "repo", rn, fmt.Sprintf("a repo with the name %s", rn))
	case "rootpw":
		if len(c.Positionals) == 0 && !c.Has("--lock") {
			return "a single argument is expected for the rootpw command: give a password, or --lock"
		}
	case "timezone":
		if len(c.Args) == 0 {
			return "at least one option or a time zone is expected"
		}
		if len(c.Positionals) > 1 {
			return "one or zero arguments are expected"
		}
		if c.Has("--nontp") && c.Has("--ntpservers") {
			return "options --nontp and --ntpservers are mutually exclusive"
		}
		if (v >= 32000 && v < F40) || v == RHEL10 {
			if c.Has("--isUtc") && !isDeprecatedOpt(p, c, "--isUtc") {
				p.warn(c.Line, "the option --isUtc will be deprecated in future releases; use --utc instead")
			}
		}
		if v >= 33000 && v < F40 {
			if given(c, "--ntpservers") {
				p.warn(c.Line, "the option --ntpservers will be deprecated in future releases; use the timesource --ntp-server command instead")
			}
			if c.Has("--nontp") {
				p.warn(c.Line, "the option --nontp will be deprecated in future releases; use timesource --ntp-disable instead")
			}
		}
	case "authconfig":
		if v >= F28 {
			p.warn(c.Line, "the authconfig command will be deprecated, use authselect instead")
		}
	case "partition":
		if c.Has("--resize") && !c.Has("--onpart") {
			return "--resize can only be used in conjunction with --onpart"
		}
		if c.Has("--resize") && !c.Has("--size") {
			return "--resize requires --size to specify new size"
		}
		if msg := mkfsChecks(c); msg != "" {
			return msg
		}
		if len(c.Positionals) > 0 {
			mp := normMount(c.Positionals[0])
			// FC3_PartData.__eq__ compares the mount point alone, and
			// F*_Partition.parse skips only swap.
			if mp != "swap" {
				p.uniqueName(c, "partition", mp, fmt.Sprintf("a partition with the mountpoint %s", mp))
			}
		}
	case "logvol":
		if msg := mkfsChecks(c); msg != "" {
			return msg
		}
		// F20_LogVol.parse
		if c.Has("--thin") && c.Has("--thinpool") {
			return "--thin and --thinpool cannot both be specified for the same logvol"
		}
		if c.Has("--thin") && !given(c, "--poolname") {
			return "--thin requires --poolname to specify pool name"
		}
		if (givenNumber(c, "--chunksize") || givenNumber(c, "--metadatasize")) && !c.Has("--thinpool") {
			return "--chunksize and --metadatasize are for thin pools only"
		}
		if v >= fedoraVersion(20) && len(countSet(c, "--useexisting", "--noformat", "--recommended", "--hibernation")) == 0 && !givenNumber(c, "--size") && !givenNumber(c, "--percent") {
			return "no size given for logical volume; use one of --useexisting, --noformat, --size, --percent, or --hibernation"
		}
		if pc, ok := c.Value("--percent"); ok && v >= fedoraVersion(20) {
			n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(pc), "_", ""))
			if errors.Is(err, strconv.ErrRange) || (err == nil && (n < 0 || n > 100)) {
				return "percentage must be between 0 and 100"
			}
		}
		if c.Has("--resize") && !c.Has("--useexisting") {
			return "--resize can only be used in conjunction with --useexisting"
		}
		if c.Has("--resize") && !c.Has("--size") {
			return "--resize requires --size to indicate new size"
		}
		lv, _ := c.Value("--name")
		vg, _ := c.Value("--vgname")
		p.uniqueName(c, "logvol", vg+"/"+lv, fmt.Sprintf("a logical volume with the name %s in volume group %s", lv, vg))
	case "raid":
		if msg := mkfsChecks(c); msg != "" {
			return msg
		}
		existing := c.Has("--useexisting") || c.Has("--noformat")
		if len(c.Positionals) < 2 && !existing {
			return "partitions required for raid"
		}
		if !c.Has("--level") && !existing {
			return "RAID partition defined without RAID level"
		}
		if dev, ok := c.Value("--device"); ok {
			p.uniqueName(c, "raid", dev, fmt.Sprintf("a RAID device with the name %s", dev))
		}
	case "volgroup":
		if len(c.Positionals) == 0 {
			return "volgroup must be given a VG name"
		}
		if len(c.Positionals) < 2 && !c.Has("--useexisting") && !c.Has("--noformat") {
			return "volgroup must be given a list of partitions"
		}
		p.uniqueName(c, "volgroup", c.Positionals[0], fmt.Sprintf("a volgroup with the name %s", c.Positionals[0]))
	case "network":
		dev, _ := c.Value("--device")
		p.uniqueName(c, "network", dev, fmt.Sprintf("a network device with the name %s", dev))
	case "user":
		n, _ := c.Value("--name")
		p.uniqueName(c, "user", n, fmt.Sprintf("a user with the name %s", n))
	case "group":
		n, _ := c.Value("--name")
		p.uniqueName(c, "group", n, fmt.Sprintf("a group with the name %s", n))
	case "sshkey":
		n, _ := c.Value("--username")
		p.uniqueName(c, "sshkey", n, fmt.Sprintf("an ssh user with the name %s", n))
	case "sshpw":
		n, _ := c.Value("--username")
		p.uniqueName(c, "sshpw", n, fmt.Sprintf("an ssh user with the name %s", n))
	case "ignoredisk":
		set := countSet(c, "--drives", "--only-use")
		if !isDeprecatedOpt(p, c, "--interactive") {
			set = append(set, countSet(c, "--interactive")...)
		}
		if len(set) == 0 {
			return "one of --drives, --only-use or --interactive must be given"
		}
	case "harddrive":
		// FC3_HardDrive.parse tests for None: an empty value counts.
		if !c.Has("--biospart") && !c.Has("--partition") {
			return "one of --biospart or --partition must be given"
		}
	case "logging":
		if given(c, "--port") && !given(c, "--host") {
			return "can't specify --port without --host"
		}
	case "eula":
		if !c.Has("--agreed") {
			return "eula expects the --agreed option"
		}
	case "timesource":
		if len(countSet(c, "--ntp-server", "--ntp-pool", "--ntp-disable")) == 0 {
			return "one of --ntp-server, --ntp-pool or --ntp-disable must be given"
		}
	case "driverdisk":
		set := countSet(c, "--source", "--biospart")
		if len(c.Positionals) > 1 {
			return "only one partition may be given"
		}
		if len(set)+len(c.Positionals) == 0 {
			return "one of --source, --biospart or a partition must be given"
		}
		if len(set)+len(c.Positionals) > 1 {
			return "only one of --source, --biospart or a partition may be given"
		}
	}
	return p.checkMore(name, c)
}

// checkMore is the rest of pykickstart's per-command checks, each as its
// command's parse() makes it (pykickstart/commands/NAME.py).
func (p *parser) checkMore(name string, c *Command) string {
	v := p.f.Version
	if (name == "autopart" || name == "partition") && given(c, "--hw-passphrase") {
		// F41_AutoPart.parse, F41_Partition.parse
		lv, _ := c.Value("--luks-version")
		if !c.Has("--encrypted") || !strings.HasPrefix(lv, "luks2-") {
			return "hw-passphrase may be specified only with LUKSv2 HW-OPAL encrypted devices"
		}
	}
	switch name {
	case "keyboard":
		// F18_Keyboard.parse
		if v >= F18 && len(c.Positionals) == 0 && !given(c, "--vckeymap") && !given(c, "--xlayouts") {
			return "one of --xlayouts, --vckeymap options with value(s) or argument is expected for the keyboard command"
		}
	case "multipath":
		// FC6_MultiPath.parse: a device belongs to one multipath.
		dev, _ := c.Value("--device")
		k := "multipath-device\x00" + dev
		if p.state.unique[k] {
			return "device '" + dev + "' is already used in a multipath"
		}
		p.state.unique[k] = true
	case "dmraid":
		// FC6_DmRaid.parse
		n, _ := c.Value("--name")
		p.uniqueName(c, "dmraid", n+"\x00"+strings.Join(c.Values("--dev"), ","), "a DM RAID device with the name "+n+" and these devices")
	case "install", "upgrade":
		// F11_Upgrade.parse
		if vals := c.Values("--root-device"); len(vals) > 0 && vals[len(vals)-1] == "" {
			return "kickstart command upgrade does not accept empty parameter --root-device"
		}
	case "device":
		// FC3_Device.parse wants a type and a module, F8_Device.parse a module.
		if want := 1; v < F8 {
			if len(c.Positionals) != 2 {
				return "device command requires two arguments: module type and name"
			}
		} else if len(c.Positionals) != want {
			return "device command requires a single argument: module name"
		}
	case "method":
		// FC3_Method has no parse of its own: "method" is reached by
		// its methods' names.
		if v <= fedoraVersion(33) || v == RHEL7 || v == RHEL8 {
			return "method is not a command of its own; write url, cdrom, nfs, harddrive or liveimg"
		}
	case "sshpw":
		// F13_SshPw.parse: exactly one password.
		if len(c.Positionals) != 1 {
			return "a single argument is expected for the sshpw command"
		}
	case "nvdimm":
		// F28_Nvdimm: the action is a choice.
		if len(c.Positionals) > 0 && c.Positionals[0] != "reconfigure" && c.Positionals[0] != "use" {
			return "argument action: invalid choice (choose from 'reconfigure', 'use')"
		}
	case "snapshot":
		// F26_Snapshot._when_cb
		if w, ok := c.Value("--when"); ok && !slices.Contains([]string{"pre-install", "post-install"}, strings.ToLower(w)) {
			return "invalid parameter to --when= argument: " + w
		}
	case "zfcp":
		// F37_ZFCP.parse (and RHEL9's)
		if v >= fedoraVersion(37) || v == RHEL9 {
			d, w, l := given(c, "--devnum"), given(c, "--wwpn"), given(c, "--fcplun")
			if !(d && !w && !l) && !(d && w && l) {
				return "only --devnum or --devnum with --wwpn and --fcplun are allowed"
			}
		}
		// FC3_ZFCP.parse: one warning per repeated device
		d, _ := c.Value("--devnum")
		w, _ := c.Value("--wwpn")
		l, _ := c.Value("--fcplun")
		p.uniqueName(c, "zfcp", d+"\x00"+w+"\x00"+l, "a zfcp with this information")
	case "fcoe":
		n, _ := c.Value("--nic")
		p.uniqueName(c, "fcoe", n, "a FCOE device with the name "+n)
	case "services":
		// FC6_Services.parse
		if !given(c, "--disabled") && !given(c, "--enabled") {
			return "one of --disabled or --enabled must be provided"
		}
	case "btrfs":
		// F17_BTRFS.parse
		if len(c.Positionals) == 0 {
			return "btrfs must be given a mountpoint"
		}
		if len(c.Positionals) < 2 && !c.Has("--subvol") {
			return "btrfs must be given a list of partitions"
		}
		if l, ok := c.Value("--data"); ok && !btrfsLevel(l) {
			return "invalid btrfs level: " + l
		}
		if l, ok := c.Value("--metadata"); ok && !btrfsLevel(l) {
			return "invalid btrfs level: " + l
		}
	case "realm":
		// F19_Realm._parseArguments
		if len(c.Args) == 0 {
			return "missing realm command arguments"
		}
		if c.Args[0] != "join" {
			return "unsupported realm '" + c.Args[0] + "' command"
		}
	case "cmdline":
		// F26_DisplayMode.parse
		if given(c, "--non-interactive") {
			return "kickstart command cmdline does not support --non-interactive parameter"
		}
	case "autopart":
		// F17_AutoPart._type_cb, F20's typeMap adding thinp
		if t, ok := c.Value("--type"); ok {
			types := []string{"lvm", "btrfs", "plain", "partition"}
			if v >= fedoraVersion(20) {
				types = append(types, "thinp")
			}
			if !slices.Contains(types, strings.ToLower(t)) {
				return "invalid autopart type: " + t
			}
		}
	case "rhsm":
		// RHEL8_RHSM.parse
		for _, k := range c.Values("--activation-key") {
			if k == "" {
				return "empty string is not a valid activation key"
			}
		}
	case "ostreesetup":
		// F21_OSTreeSetup.parse
		if u, _ := c.Value("--url"); !strings.HasPrefix(u, "file:") && !strings.HasPrefix(u, "http:") && !strings.HasPrefix(u, "https:") {
			return "ostree repos must use file, HTTP or HTTPS protocol"
		}
	case "mount":
		// F27_Mount.parse
		if given(c, "--mkfsoptions") && !given(c, "--reformat") {
			return "'--mkfsoptions' requires --reformat"
		}
	case "network":
		// F22_Network, F39_Network
		if given(c, "--bridgeopts") && !given(c, "--bridgeslaves") {
			return "option --bridgeopts requires --bridgeslaves to be specified"
		}
		if !given(c, "--device") {
			for _, o := range []string{"--ipv4-dns-search", "--ipv6-dns-search", "--ipv4-ignore-auto-dns", "--ipv6-ignore-auto-dns"} {
				if given(c, o) {
					return "option " + o + " requires --device to be specified"
				}
			}
		}
	}
	return ""
}

// btrfsLevel is a RAID level btrfs takes (F17_BTRFS.levelMap).
func btrfsLevel(l string) bool {
	return slices.Contains([]string{"raid0", "0", "raid1", "1", "raid10", "10", "single"}, strings.ToLower(l))
}

// secretOptions hold passwords and keys, in any command. Their values
// never appear in a diagnostic, since diagnostics reach logs.
var secretOptions = map[string]bool{
	"--password": true, "--passphrase": true, "--wpakey": true, "--wepkey": true,
	"--activation-key": true, "--proxy": true, "--sshkey": true, "--one-time-password": true,
	"--reverse-password": true, "--backuppassphrase": true, "--hw-passphrase": true,
}

// secretCommands carry secrets (the commands whose pykickstart classes
// take a password, passphrase, key or proxy with credentials): a
// diagnostic about one of them quotes none of its values, whichever
// option or argument the mistake is in.
var secretCommands = map[string]bool{
	"rootpw": true, "user": true, "sshpw": true, "sshkey": true, "bootloader": true, "lilo": true,
	"part": true, "partition": true, "logvol": true, "raid": true, "autopart": true, "network": true,
	"rhsm": true, "realm": true, "iscsi": true, "vnc": true, "rdp": true, "url": true, "repo": true,
	"liveimg": true, "auth": true, "authconfig": true, "firstboot": true, "btrfs": true,
}

// redact removes secret values from a message about c, of syntax spec
// (nil if unknown). In a command that carries secrets that is every
// positional argument, every string value, and a value given to a flag
// (rootpw --plaintext=PW); the values of int, float, yes/no and choice
// options stay, since a message about "--size=10G" needs its value and a
// secret cannot pass for one. Each is replaced where it stands as a
// whole token (quoted, after '=' or between spaces), so that a short
// secret does not mangle the words around it.
func redact(spec *commandSpec, c *Command, msg string) string {
	typed := func(name string) bool {
		if spec == nil {
			return false
		}
		o, _, err := spec.option(name)
		return err == nil && o != nil && o.takesValue && o.typ != typeString
	}
	var secrets []string
	for i, a := range c.Args {
		name, val, hasEq := strings.Cut(a, "=")
		prev := ""
		if i > 0 && strings.HasPrefix(c.Args[i-1], "-") && !strings.Contains(c.Args[i-1], "=") {
			prev = c.Args[i-1]
		}
		switch {
		case hasEq && strings.HasPrefix(a, "-"):
			if secretOptions[name] || (secretCommands[c.Name] && !typed(name)) {
				secrets = append(secrets, val)
			}
		case strings.HasPrefix(a, "-"):
		case secretOptions[prev]:
			secrets = append(secrets, a)
		case secretCommands[c.Name] && !(prev != "" && typed(prev)):
			secrets = append(secrets, a)
		}
	}
	// Longest first: a secret that contains another goes whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	for _, sec := range secrets {
		msg = replaceToken(msg, sec, "***")
	}
	return msg
}

// replaceToken replaces each occurrence of tok in s that stands as a
// whole token: at the ends or between quotes, blanks, '=', ':', ',' and
// brackets. It works on bytes, so any input is safe.
func replaceToken(s, tok, with string) string {
	if tok == "" {
		return s
	}
	bound := func(c byte) bool { return strings.IndexByte(" \t\n'\"=:,()[]", c) >= 0 }
	var b strings.Builder
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], tok)
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		j += i
		k := j + len(tok)
		if (j == 0 || bound(s[j-1])) && (k == len(s) || bound(s[k])) {
			b.WriteString(s[i:j])
			b.WriteString(with)
		} else {
			b.WriteString(s[i : j+1])
			k = j + 1
		}
		i = k
	}
	return b.String()
}

func isDeprecatedOpt(p *parser, c *Command, name string) bool {
	spec := p.g.lookup(p.f.Version, c.Name)
	if spec == nil {
		return false
	}
	o, _, _ := spec.option(name)
	return o != nil && o.deprecated
}

func mkfsChecks(c *Command) string {
	if c.Has("--mkfsoptions") && c.Has("--noformat") {
		return "--mkfsoptions with --noformat has no effect"
	}
	if c.Has("--mkfsoptions") && c.Has("--fsprofile") {
		return "--mkfsoptions and --fsprofile cannot be used together"
	}
	return ""
}

// normMount normalises a mount point as Anaconda does (/boot/ is /boot).
func normMount(s string) string {
	if !strings.HasPrefix(s, "/") {
		return s
	}
	parts := []string{}
	for _, p := range strings.Split(s, "/") {
		switch p {
		case "", ".":
		case "..":
			if len(parts) > 0 {
				parts = parts[:len(parts)-1]
			}
		default:
			parts = append(parts, p)
		}
	}
	return "/" + strings.Join(parts, "/")
}

// checkSectionHeader checks a section's header options.
func (p *parser) checkSectionHeader(s *Section) {
	// TracebackScriptSection.handleHeader
	if s.Name == "%traceback" && p.f.Version >= F34 {
		p.warn(s.Header, "the %%traceback section has been deprecated; use %%onerror instead")
	}
	spec := p.g.lookup(p.f.Version, s.Name)
	if spec == nil {
		// %addon, %anaconda and unknown sections take anything.
		return
	}
	_, opts, deprecated, err := parseArgs(spec, s.Args)
	s.Options = opts
	for _, d := range deprecated {
		p.warn(s.Header, "the %s option has been deprecated and no longer has any effect; remove it", d)
	}
	if err != nil {
		p.errorf(s.Header, "%s: %v", s.Name, err)
		return
	}
	v := p.f.Version
	if s.Kind == SectionPackages && ((v >= 32000 && v < F40) || v == RHEL9) {
		for _, o := range opts {
			switch o.Written {
			case "--instLangs":
				p.warn(s.Header, "the --instLangs option will be deprecated in future releases; use --inst-langs instead")
			case "--excludeWeakdeps":
				p.warn(s.Header, "the --excludeWeakdeps option will be deprecated in future releases; use --exclude-weakdeps instead")
			}
		}
	}
	if s.Kind == SectionCertificate && !s.Has("--dir") && !s.Has("--type") {
		p.errorf(s.Header, "%%certificate: one of --dir or --type must be given")
	}
}

// finish runs the checks that need the whole file.
func (p *parser) finish() {}
