package anaconda

import (
	"fmt"
	"strconv"
	"strings"
)

// BootOptions are the Anaconda boot options the test installer honours
// (Anaconda's docs/boot-options.rst).
type BootOptions struct {
	KS      string   // inst.ks=, or "" for none
	Stage2  string   // inst.stage2=
	Repo    string   // inst.repo=
	Proxy   string   // inst.proxy=
	Text    bool     // inst.text
	Cmdline bool     // inst.cmdline
	Console []string // console=
}

// ParseBootOptions reads a kernel command line. The "inst." prefix may be
// left out, as Anaconda still accepts (ks=, repo=, proxy=, text).
func ParseBootOptions(cmdline string) BootOptions {
	var o BootOptions
	for _, f := range strings.Fields(cmdline) {
		k, v, _ := strings.Cut(f, "=")
		switch strings.TrimPrefix(k, "inst.") {
		case "ks":
			o.KS = v
			if v == "" {
				o.KS = "nfs:default" // bare inst.ks: from DHCP, which no test uses
			}
		case "stage2":
			o.Stage2 = v
		case "repo":
			o.Repo = v
		case "proxy":
			o.Proxy = v
		case "text":
			o.Text = true
		case "cmdline":
			o.Cmdline = true
		case "console":
			o.Console = append(o.Console, v)
		}
	}
	return o
}

// Location is where an inst.ks= or inst.stage2= points.
type Location struct {
	Kind  string // "http", "hd", "cdrom", "file"
	URL   string // for http and https
	Label string // hd:LABEL=
	UUID  string // hd:UUID=
	Dev   string // hd:<dev>, e.g. sdb1 or /dev/sdb1
	Path  string // the file on that device, or in the initrd for file:
}

// ParseLocation reads the forms Anaconda takes: http(s)://...,
// hd:LABEL=<label>:/path (with udev's \xNN escapes), hd:UUID=..:/path,
// hd:<dev>:/path, cdrom:/path and file:/path.
func ParseLocation(s string) (Location, error) {
	switch {
	case strings.HasPrefix(s, "http://"), strings.HasPrefix(s, "https://"):
		return Location{Kind: "http", URL: s}, nil
	case strings.HasPrefix(s, "file:"):
		return Location{Kind: "file", Path: strings.TrimPrefix(s, "file:")}, nil
	case strings.HasPrefix(s, "cdrom:"):
		return Location{Kind: "cdrom", Path: strings.TrimPrefix(s, "cdrom:")}, nil
	case s == "cdrom":
		return Location{Kind: "cdrom"}, nil
	case strings.HasPrefix(s, "hd:"):
		rest := strings.TrimPrefix(s, "hd:")
		l := Location{Kind: "hd"}
		var dev string
		// The device part ends at the colon before the path; a label may
		// not contain a raw colon (udev escapes it).
		if i := strings.Index(rest, ":/"); i >= 0 {
			dev, l.Path = rest[:i], rest[i+1:]
		} else {
			dev = rest
		}
		switch {
		case strings.HasPrefix(dev, "LABEL="):
			label, err := UnescapeUdev(strings.TrimPrefix(dev, "LABEL="))
			if err != nil {
				return l, fmt.Errorf("%s: %w", s, err)
			}
			l.Label = label
		case strings.HasPrefix(dev, "UUID="):
			l.UUID = strings.TrimPrefix(dev, "UUID=")
		default:
			l.Dev = strings.TrimPrefix(dev, "/dev/")
		}
		if l.Label == "" && l.UUID == "" && l.Dev == "" {
			return l, fmt.Errorf("%s: no device", s)
		}
		return l, nil
	}
	return Location{}, fmt.Errorf("%s: not a location the installer knows (http, hd, cdrom, file)", s)
}

// UnescapeUdev undoes udev's \xNN escaping of a label.
func UnescapeUdev(s string) (string, error) {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.HasPrefix(s[i:], `\x`) {
			if i+4 > len(s) {
				return "", fmt.Errorf("bad escape %q", s[i:])
			}
			n, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
			if err != nil {
				return "", fmt.Errorf("bad escape %q", s[i:i+4])
			}
			sb.WriteByte(byte(n))
			i += 3
			continue
		}
		sb.WriteByte(s[i])
	}
	return sb.String(), nil
}
