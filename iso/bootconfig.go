package iso

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// UdevEscape escapes a volume label the way udev names it in
// /dev/disk/by-label (blkid's ID_FS_LABEL_ENC, from libblkid's
// blkid_encode_string), which inst.ks=hd:LABEL= and inst.stage2= use:
// [A-Za-z0-9#+-.:=@_] and multibyte UTF-8 characters stay, every other
// byte (a backslash, a space, an invalid UTF-8 byte) becomes \xNN.
func UdevEscape(label string) string {
	var sb strings.Builder
	for i := 0; i < len(label); {
		c := label[i]
		if r, n := utf8.DecodeRuneInString(label[i:]); n > 1 && r != utf8.RuneError {
			sb.WriteString(label[i : i+n])
			i += n
			continue
		}
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("#+-.:=@_", c) >= 0 {
			sb.WriteByte(c)
		} else {
			fmt.Fprintf(&sb, `\x%02x`, c)
		}
		i++
	}
	return sb.String()
}

// ConfigEdit says how to change every install entry of a boot loader
// configuration.
type ConfigEdit struct {
	Append   []string // arguments to add (inst.ks=... among them)
	Remove   []string // arguments to drop: "rd.live.check" or "inst.ks" drops "inst.ks=..." too
	OldLabel string   // the volume label being replaced, when it changes
	NewLabel string
	Timeout  int  // menu timeout in seconds; negative keeps it
	Unattend bool // make the plain install entry the default
	// AllEntries edits every kernel line, as mkksiso does, for media
	// with no installer entry to tell apart from rescue and memory-test
	// ones.
	AllEntries bool
	// Replace are literal FROM, TO replacements made in the whole
	// configuration first, as mkksiso's -R does.
	Replace [][2]string
}

func (e ConfigEdit) edits(args []string) bool { return e.AllEntries || isInstallEntry(args) }

var (
	isolinuxTimeout = regexp.MustCompile(`(?im)^(\s*timeout\s+)\d+`)
	grubTimeout     = regexp.MustCompile(`(?m)^(\s*set\s+timeout=)\S+`)
	grubDefault     = regexp.MustCompile(`(?m)^(\s*set\s+default=)\S+`)
)

// editArgs rewrites one kernel argument list as mkksiso's
// AlterKernelArgs does, so that the two tools' edits agree: the arguments
// are grouped by key where the key first appears; Remove drops every
// value of a key (and, where mkksiso would do nothing, an exact
// KEY=VALUE); Append extends a key that is there, else adds it at the
// end. The caller removes inst.ks before appending its own, so kiln's
// kickstart replaces one already on the media, where mkksiso would leave
// both.
func (e ConfigEdit) editArgs(args []string) []string {
	type group struct {
		args    []string
		removed bool
	}
	var groups []*group
	byKey := map[string]*group{}
	add := func(a string) {
		k, _, _ := strings.Cut(a, "=")
		if g := byKey[k]; g != nil {
			g.args = append(g.args, a)
			return
		}
		g := &group{args: []string{a}}
		groups = append(groups, g)
		byKey[k] = g
	}
	for _, a := range args {
		add(a)
	}
	for _, r := range e.Remove {
		if g := byKey[r]; g != nil {
			g.removed = true
			delete(byKey, r)
			continue
		}
		if k, _, ok := strings.Cut(r, "="); ok && byKey[k] != nil {
			g := byKey[k]
			g.args = slices.DeleteFunc(g.args, func(a string) bool { return a == r })
		}
	}
	for _, a := range e.Append {
		add(a)
	}
	var out []string
	for _, g := range groups {
		if !g.removed {
			out = append(out, g.args...)
		}
	}
	return out
}

// replace applies the caller's literal replacements (mkksiso's -R FROM
// TO) to a whole configuration, before anything else is edited.
func (e ConfigEdit) replace(cfg string) string {
	for _, r := range e.Replace {
		if r[0] != "" {
			cfg = strings.ReplaceAll(cfg, r[0], r[1])
		}
	}
	return cfg
}

// isInstallEntry reports whether a kernel line boots the installer (it
// names the install media), rather than a rescue or memory test entry.
func isInstallEntry(args []string) bool {
	for _, a := range args {
		if strings.HasPrefix(a, "inst.stage2=") || strings.HasPrefix(a, "inst.repo=") || strings.HasPrefix(a, "root=live:") {
			return true
		}
	}
	return false
}

// EditIsolinux edits an isolinux.cfg: the append lines of install entries,
// the timeout (tenths of a second there), the default entry, the label.
func EditIsolinux(cfg string, e ConfigEdit) string {
	cfg = e.replace(cfg)
	if e.OldLabel != "" && e.NewLabel != "" {
		cfg = replaceLabel(cfg, e.OldLabel, e.NewLabel)
	}
	lines := strings.SplitAfter(cfg, "\n")
	// Find the labels, their append lines, and "menu default".
	type entry struct{ label, appendLine, defaultLine int }
	var entries []entry
	cur := -1
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		switch strings.ToLower(f[0]) {
		case "label":
			entries = append(entries, entry{label: i, appendLine: -1, defaultLine: -1})
			cur = len(entries) - 1
		case "append":
			if cur >= 0 {
				entries[cur].appendLine = i
				args := e.editArgs(f[1:])
				if e.edits(f[1:]) {
					lines[i] = indentOf(l) + f[0] + " " + strings.Join(args, " ") + eol(l)
				}
			}
		case "menu":
			if cur >= 0 && len(f) > 1 && strings.EqualFold(f[1], "default") {
				entries[cur].defaultLine = i
			}
		}
	}
	if e.Unattend {
		// The first plain install entry becomes the default; "Test this
		// media" stops being it.
		install := -1
		for i, en := range entries {
			if en.appendLine >= 0 && isInstallEntry(strings.Fields(lines[en.appendLine])[1:]) && !strings.Contains(lines[en.appendLine], "rd.live.check") {
				install = i
				break
			}
		}
		if install >= 0 {
			for _, en := range entries {
				if en.defaultLine >= 0 {
					lines[en.defaultLine] = ""
				}
			}
			en := entries[install]
			lines[en.label] = lines[en.label] + indentOf(lines[en.appendLine]) + "menu default" + eol(lines[en.label])
		}
	}
	out := strings.Join(lines, "")
	if e.Timeout >= 0 {
		out = isolinuxTimeout.ReplaceAllString(out, fmt.Sprintf("${1}%d", e.Timeout*10))
	}
	return out
}

// EditGrub edits a grub.cfg: linux/linuxefi lines of install entries, the
// timeout, the default entry, and labels in search --label and arguments.
func EditGrub(cfg string, e ConfigEdit) string {
	cfg = e.replace(cfg)
	if e.OldLabel != "" && e.NewLabel != "" {
		cfg = replaceLabel(cfg, e.OldLabel, e.NewLabel)
	}
	lines := strings.SplitAfter(cfg, "\n")
	entry, install := -1, -1
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "menuentry":
			entry++
		case "linux", "linuxefi", "linux16":
			if len(f) < 2 || !e.edits(f[2:]) {
				continue
			}
			lines[i] = indentOf(l) + f[0] + " " + f[1] + " " + strings.Join(e.editArgs(f[2:]), " ") + eol(l)
			if install < 0 && !strings.Contains(l, "rd.live.check") {
				install = entry
			}
		}
	}
	out := strings.Join(lines, "")
	if e.Timeout >= 0 {
		out = grubTimeout.ReplaceAllString(out, fmt.Sprintf("${1}%d", e.Timeout))
	}
	if e.Unattend && install >= 0 {
		out = grubDefault.ReplaceAllString(out, fmt.Sprintf(`${1}"%d"`, install))
	}
	return out
}

// replaceLabel swaps a volume label, raw and udev-escaped.
func replaceLabel(cfg, old, new string) string {
	cfg = strings.ReplaceAll(cfg, "LABEL="+UdevEscape(old), "LABEL="+UdevEscape(new))
	cfg = strings.ReplaceAll(cfg, "LABEL="+old, "LABEL="+UdevEscape(new))
	for _, flag := range []string{"--label", "-l"} {
		cfg = strings.ReplaceAll(cfg, flag+" '"+old+"'", flag+" '"+new+"'")
		cfg = strings.ReplaceAll(cfg, flag+` "`+old+`"`, flag+` "`+new+`"`)
		cfg = strings.ReplaceAll(cfg, flag+" "+old, flag+" '"+new+"'")
	}
	return cfg
}

func indentOf(l string) string { return l[:len(l)-len(strings.TrimLeft(l, " \t"))] }

func eol(l string) string {
	if strings.HasSuffix(l, "\r\n") {
		return "\r\n"
	}
	if strings.HasSuffix(l, "\n") {
		return "\n"
	}
	return ""
}
