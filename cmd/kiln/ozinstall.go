package main

import (
	"bufio"
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/pkg/builder"
	"github.com/kiln-build/kiln/pkg/tdl"
)

const ozUsage = `Usage:
  kiln oz-install [-a KS] [-d N] [-u] [-g] [-i ICICLE] [-x XML] [-s DISK] [-t SECS] [-p] [-c CFG] TDL

oz-install's flags, with Oz's meanings, for scripts that called Oz. The
build is kiln build's: no libvirt, no root.

  -a FILE   use FILE as the kickstart instead of one made from the TDL;
            for a Debian TDL (os name Debian), FILE is the preseed, and
            the TDL's url is d-i's netboot directory, as in Oz
  -c FILE   read an oz.cfg: [libvirt] memory, cpus, image_type;
            [timeouts] install, inactivity; [paths] output_dir
  -d N      log level: 0 errors, 1 warnings, 2 info, 3 and 4 debug
  -f        download the ISO again (kiln keeps it in its cache)
  -g        generate the ICICLE package manifest (kiln always writes one)
  -i FILE   write the ICICLE to FILE (only with -g)
  -p        replace an existing output disk (Oz: clean up the old guest)
  -s FILE   the output disk (default: output_dir/NAME.dsk, as Oz)
  -t SECS   the install timeout (default 1200, as Oz)
  -u        customize: the TDL's packages, files and commands. Oz does
            this over SSH on a second boot; kiln does it in %post of the
            install, so the image never has an SSH key put in it
  -x FILE   write a libvirt domain XML for the image
  -b BUS, -m MAC, -n NETDEV are accepted and ignored: the build VM uses
            virtio and QEMU's user network.

Examples:
  kiln oz-install -d3 -u -a my-rocky9.ks rocky9.tdl
  kiln oz-install -s /var/tmp/rocky9.qcow2 -x rocky9.xml rocky9.tdl`

func runOzInstall(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "oz-install", ozUsage)
	auto := fs.StringP("auto", "a", "", "")
	bus := fs.StringP("disk-bus", "b", "virtio", "")
	cfgPath := fs.StringP("config", "c", "", "")
	debug := fs.IntP("debug", "d", 0, "")
	fs.BoolP("force-download", "f", false, "")
	genIcicle := fs.BoolP("generate-icicle", "g", false, "")
	iciclePath := fs.StringP("icicle", "i", "", "")
	fs.StringP("mac", "m", "", "")
	fs.StringP("nicmodel", "n", "", "")
	cleanup := fs.BoolP("cleanup", "p", false, "")
	disk := fs.StringP("disk", "s", "", "")
	timeout := fs.IntP("timeout", "t", 0, "")
	customize := fs.BoolP("customize", "u", false, "")
	xmlOut := fs.StringP("xml", "x", "", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 2 && *customize && *auto == "" {
		return usagef("oz-install: -u takes no file: it means customize. To use %s as the kickstart, pass -a %s %s", fs.Arg(0), fs.Arg(0), fs.Arg(1))
	}
	if fs.NArg() != 1 {
		return usagef("oz-install: name one TDL (see kiln oz-install --help)")
	}
	if *iciclePath != "" && !*genIcicle {
		return &invalidError{err: fmt.Errorf("oz-install: -i is only valid with -g")}
	}
	if *bus != "virtio" && *bus != "ide" {
		return usagef("oz-install: -b %q: want ide or virtio", *bus)
	}
	if *debug >= 3 && e.verbose == 0 {
		e.verbose = 1
		e.log = newLogger(e)
	}
	cfg, err := readOzConfig(*cfgPath)
	if err != nil {
		return &invalidError{err: err}
	}
	f := buildFlags{tdlPath: fs.Arg(0), formats: cfg.imageType, memory: cfg.memory, cpus: cfg.cpus, firmware: "bios",
		accel: "auto", boot: "direct", force: *cleanup, timeout: time.Duration(cfg.install) * time.Second,
		inactivity: time.Duration(cfg.inactivity) * time.Second}
	if *timeout > 0 {
		f.timeout = time.Duration(*timeout) * time.Second
	}
	// Oz's -a is the installer's answer file: a kickstart, or for a
	// Debian TDL a preseed.
	debian, err := isDebianTDL(fs.Arg(0))
	if err != nil {
		return err
	}
	switch {
	case debian && *auto == "":
		return usagef("oz-install: %s is a Debian TDL: give its preseed with -a preseed.cfg (kiln has no default preseed, Oz's built-in one sets only the root password)", fs.Arg(0))
	case debian:
		f.preseed = *auto
	default:
		f.ks = *auto
	}
	if !*customize {
		// Without -u Oz installs the TDL's OS and nothing else; its
		// packages, files and commands wait for oz-customize.
		e.log.Debug("without -u, the TDL's packages, files and commands are not applied, as in Oz")
	}
	o, err := f.options(ctx, e)
	if err != nil {
		return err
	}
	if !*customize {
		o.TDL.Packages, o.TDL.Files, o.TDL.Commands, o.TDL.Precommands = nil, nil, nil, nil
	}
	if debian && (len(o.TDL.Files) > 0 || len(o.TDL.Commands) > 0 || len(o.TDL.Precommands) > 0) {
		return &invalidError{err: fmt.Errorf("%s: -u with files or commands: kiln applies a Debian TDL's packages (pkgsel/include) but not yet its files and commands; put them in the preseed's late_command", fs.Arg(0))}
	}
	// The output: -s, else Oz's output_dir/NAME.dsk.
	out := *disk
	if out == "" {
		dir := cfg.outputDir
		if dir == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return err
			}
			dir = filepath.Join(home, ".oz", "images")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		out = filepath.Join(dir, o.TDL.Name+".dsk")
	} else if !filepath.IsAbs(out) {
		return usagef("oz-install: -s %s: the output disk must be an absolute path, as in Oz", out)
	}
	o.Output = strings.TrimSuffix(out, filepath.Ext(out))
	o.Images = map[string]string{o.Formats[0]: out}
	o.IciclePath = *iciclePath
	if *xmlOut != "" && !*cleanup {
		if _, err := os.Lstat(*xmlOut); err == nil {
			return &invalidError{err: fmt.Errorf("%s exists; use -p to replace it", *xmlOut)}
		}
	}
	if err := doBuild(ctx, e, o); err != nil {
		return err
	}
	if *xmlOut != "" {
		return writeDomainXML(*xmlOut, o, out)
	}
	return nil
}

// ozConfig is what kiln reads of an oz.cfg, with Oz's defaults.
type ozConfig struct {
	memory, imageType, outputDir string
	cpus, install, inactivity    int
}

func readOzConfig(p string) (ozConfig, error) {
	c := ozConfig{memory: "2048", imageType: "raw", cpus: 1, install: 1200, inactivity: 300}
	if p == "" {
		return c, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return c, fmt.Errorf("reading the Oz config: %w", err)
	}
	defer f.Close()
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.Trim(line, "[]")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return c, fmt.Errorf("%s:%d: want key = value", p, n)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		num := func(dst *int) error {
			i, err := strconv.Atoi(v)
			if err != nil || i <= 0 {
				return fmt.Errorf("%s:%d: %s = %q is not a positive number", p, n, k, v)
			}
			*dst = i
			return nil
		}
		switch section + "." + k {
		case "libvirt.memory":
			c.memory = v
		case "libvirt.cpus":
			if err := num(&c.cpus); err != nil {
				return c, err
			}
		case "libvirt.image_type":
			if _, ok := builder.Formats[v]; !ok {
				return c, fmt.Errorf("%s:%d: image_type = %s: kiln writes raw, qcow2, vmdk, vhd and vhdx", p, n, v)
			}
			c.imageType = v
		case "timeouts.install":
			if err := num(&c.install); err != nil {
				return c, err
			}
		case "timeouts.inactivity":
			if err := num(&c.inactivity); err != nil {
				return c, err
			}
		case "paths.output_dir":
			c.outputDir = v
		}
	}
	return c, sc.Err()
}

// domain is the part of a libvirt domain XML an image needs to boot.
type domain struct {
	XMLName xml.Name `xml:"domain"`
	Type    string   `xml:"type,attr"`
	Name    string   `xml:"name"`
	Memory  struct {
		Unit  string `xml:"unit,attr"`
		Value int    `xml:",chardata"`
	} `xml:"memory"`
	VCPU int `xml:"vcpu"`
	OS   struct {
		Type struct {
			Arch    string `xml:"arch,attr"`
			Machine string `xml:"machine,attr"`
			Value   string `xml:",chardata"`
		} `xml:"type"`
		Firmware string `xml:"firmware,attr,omitempty"`
		Boot     struct {
			Dev string `xml:"dev,attr"`
		} `xml:"boot"`
	} `xml:"os"`
	Features struct {
		ACPI struct{} `xml:"acpi"`
		APIC struct{} `xml:"apic"`
	} `xml:"features"`
	Devices struct {
		Disk struct {
			Type   string `xml:"type,attr"`
			Device string `xml:"device,attr"`
			Driver struct {
				Name string `xml:"name,attr"`
				Type string `xml:"type,attr"`
			} `xml:"driver"`
			Source struct {
				File string `xml:"file,attr"`
			} `xml:"source"`
			Target struct {
				Dev string `xml:"dev,attr"`
				Bus string `xml:"bus,attr"`
			} `xml:"target"`
		} `xml:"disk"`
		Interface struct {
			Type  string `xml:"type,attr"`
			Model struct {
				Type string `xml:"type,attr"`
			} `xml:"model"`
		} `xml:"interface"`
		Serial struct {
			Type string `xml:"type,attr"`
		} `xml:"serial"`
		Console struct {
			Type string `xml:"type,attr"`
		} `xml:"console"`
	} `xml:"devices"`
}

// writeDomainXML writes a libvirt domain for the built image, for users
// who run it under libvirt elsewhere.
func writeDomainXML(p string, o builder.Options, image string) error {
	var d domain
	d.Type = "kvm"
	d.Name = o.TDL.Name
	d.Memory.Unit, d.Memory.Value = "MiB", o.MemoryMiB
	d.VCPU = o.CPUs
	d.OS.Type.Arch, d.OS.Type.Machine, d.OS.Type.Value = "x86_64", "q35", "hvm"
	if o.Firmware == "uefi" {
		d.OS.Firmware = "efi"
	}
	d.OS.Boot.Dev = "hd"
	dk := &d.Devices.Disk
	dk.Type, dk.Device = "file", "disk"
	dk.Driver.Name, dk.Driver.Type = "qemu", qemuFormat(o.Formats[0])
	dk.Source.File = image
	dk.Target.Dev, dk.Target.Bus = "vda", "virtio"
	d.Devices.Interface.Type, d.Devices.Interface.Model.Type = "network", "virtio"
	d.Devices.Serial.Type, d.Devices.Console.Type = "pty", "pty"
	b, err := xml.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	b = []byte(strings.Replace(string(b), "<interface type=\"network\">", "<interface type=\"network\">\n      <source network=\"default\"></source>", 1))
	tmp := p + ".kiln-tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func qemuFormat(f string) string {
	if q := builder.Formats[f].QEMU; q != "" {
		return q
	}
	return f
}

// isDebianTDL reports whether the TDL names Debian, which Oz installs
// with d-i and a preseed.
func isDebianTDL(p string) (bool, error) {
	t, err := tdl.ParseFile(p)
	if err != nil {
		return false, &invalidError{err: fmt.Errorf("%s: %w", p, err)}
	}
	return t.OS.Name == "Debian", nil
}
