package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-build/kiln/iso"
	"github.com/kiln-build/kiln/pkg/kickstart"
)

const isoUsage = `Usage:
  kiln iso --ks FILE [--add SRC[:DEST]]... [--cmdline "ARGS"] [--rm-args "ARGS"]
           [-u|--updates IMAGE] [-R|--replace FROM TO]... [--volid LABEL]
           [--timeout SECONDS] [--no-md5] [--force] IN.iso OUT.iso
  kiln iso inspect IMAGE.iso

The first form writes a copy of a vendor installer ISO that installs
unattended with the kickstart: ks.cfg at the root, inst.ks=hd:LABEL=...
on every install entry of isolinux, GRUB and the GRUB inside the EFI
image, the plain install entry made the default, the menu timeout set,
and the media checksum implanted. The copy boots in BIOS and UEFI, from
CD and from a USB stick it is dd'd to. It needs no root, mount, xorriso or
mtools; on a file system that reflinks, only the changes are written.
SOURCE_DATE_EPOCH makes the output reproducible.

The kernel arguments are edited as lorax's mkksiso edits them: --rm-args
drops each named argument, --cmdline and inst.ks= (and inst.updates= for
--updates) extend an argument already there or are added at the end, and
each --replace FROM TO is made in the whole configuration first.

inspect prints what an installer ISO is made of: the volume id, the El
Torito boot entries and the files they load, the system area (MBR and
GPT), every boot loader configuration with its kernel command lines,
including those inside the EFI boot image, the .treeinfo family, version
and arch, and whether a media checksum is implanted. --json prints the
same as one JSON object.

Examples:
  kiln iso --ks my-rocky9.ks Rocky-9.5-x86_64-dvd.iso rocky9-install.iso
  kiln iso --ks my.ks --add ./custom-rpms:custom --cmdline console=ttyS0 in.iso out.iso
  kiln iso inspect Rocky-9.5-x86_64-dvd.iso`

func runISO(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stdout, isoUsage)
		if len(args) == 0 {
			return usagef("iso: want inspect")
		}
		return nil
	}
	if args[0] != "inspect" {
		return runISORemaster(ctx, e, args)
	}
	fs := flagSet(e, "iso inspect", isoUsage)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("iso inspect: name one image")
	}
	name := fs.Arg(0)
	f, err := os.Open(name)
	if err != nil {
		return &invalidError{err: fmt.Errorf("opening image: %w", err)}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	in, err := iso.Inspect(f, st.Size())
	if err != nil {
		if errors.Is(err, iso.ErrFormat) {
			return &invalidError{err: fmt.Errorf("%s: %w", name, err)}
		}
		return &invalidError{err: fmt.Errorf("%s: %w", name, err)}
	}
	if e.json {
		return writeJSON(e.stdout, in)
	}
	w := e.stdout
	fmt.Fprintf(w, "volume id:   %s\n", in.VolumeID)
	if t := in.TreeInfo; t != nil {
		fmt.Fprintf(w, "tree:        %s %s %s (.treeinfo)\n", t.Family, t.Version, t.Arch)
	}
	fmt.Fprintf(w, "rock ridge:  %s\njoliet:      %s\nmedia md5:   %s\n", yesNo(in.RockRidge), yesNo(in.Joliet), map[bool]string{true: "implanted", false: "not implanted"}[in.MD5Implanted])
	fmt.Fprintln(w, "El Torito:")
	if len(in.ElTorito) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	for _, b := range in.ElTorito {
		file := b.File
		if file == "" {
			file = "(not a file of the tree)"
		}
		fmt.Fprintf(w, "  %-5s emulation %-9s load %5d sectors at LBA %-7d %s\n", b.Platform, b.Emulation, b.LoadSize, b.LoadLBA, file)
	}
	sa := in.SystemArea
	fmt.Fprintf(w, "system area: %s MBR", sa.Kind)
	if sa.GPT != nil {
		fmt.Fprintf(w, ", GPT (backup at LBA %d)", sa.GPT.BackupLBA)
	}
	fmt.Fprintln(w)
	for _, p := range sa.MBR {
		fmt.Fprintf(w, "  MBR %d: type 0x%02x%s start %d sectors %d\n", p.Index, p.Type, map[bool]string{true: " bootable", false: ""}[p.Bootable], p.StartLBA, p.Sectors)
	}
	for _, p := range sa.Partitions {
		fmt.Fprintf(w, "  GPT %d: %s %q start %d sectors %d\n", p.Index, p.TypeGUID, p.Name, p.FirstLBA, p.LastLBA-p.FirstLBA+1)
	}
	fmt.Fprintln(w, "boot configs:")
	for _, c := range in.BootConfigs {
		where := c.Path
		if c.Image != "" {
			where = c.Image + ": " + c.Path
		}
		fmt.Fprintf(w, "  %s\n", where)
		for _, l := range c.Cmdlines {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func runISORemaster(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "iso", isoUsage)
	// -R/--replace takes two words, FROM TO, as mkksiso's does; pflag
	// takes one, so they are taken out first.
	args, replace, err := replaceArgs(args)
	if err != nil {
		return err
	}
	ksFile := fs.String("ks", "", "the kickstart to embed (required)")
	updates := fs.StringP("updates", "u", "", "an Anaconda updates image to put on the media, with inst.updates= on every install entry")
	oneWord := fs.StringArrayP("replace", "R", nil, "FROM TO: replace the text FROM with TO in every boot configuration first (repeatable; two words, as mkksiso's)")
	ver := fs.String("version", "", "kickstart syntax to check against (default: the file's #version=, else RHEL9)")
	adds := fs.StringArray("add", nil, "put a file or directory on the image: SRC[:DEST] (repeatable)")
	cmdline := fs.String("cmdline", "", "kernel arguments to add to every install entry")
	rmArgs := fs.String("rm-args", "", "kernel arguments to remove from every install entry")
	volid := fs.String("volid", "", "a new volume label")
	timeout := fs.Int("timeout", 5, "boot menu timeout in seconds")
	noMD5 := fs.Bool("no-md5", false, "do not implant the media checksum")
	force := fs.Bool("force", false, "replace OUT.iso if it exists")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(*oneWord) > 0 {
		return usagef("iso: --replace %q: give two words, --replace FROM TO", (*oneWord)[0])
	}
	if *ksFile == "" || fs.NArg() != 2 {
		return usagef("iso: want --ks FILE IN.iso OUT.iso (see kiln iso --help)")
	}
	in, out := fs.Arg(0), fs.Arg(1)
	v, err := parseVersionFlag(*ver)
	if err != nil {
		return err
	}
	ksData, err := os.ReadFile(*ksFile)
	if err != nil {
		return &invalidError{err: fmt.Errorf("reading kickstart: %w", err)}
	}
	kf := kickstart.Parse(*ksFile, ksData, kickstart.Options{Version: v, Context: ctx})
	report(e, kf.Diagnostics)
	if len(kf.Errors()) > 0 {
		return &invalidError{err: fmt.Errorf("%s has errors; no image written", *ksFile), reported: true}
	}
	// The installed system should keep the user's file; what is embedded
	// is the flattened kickstart, since %include paths do not exist on the
	// media.
	if len(kf.Includes) > 0 {
		ksData = kf.Render()
	}
	o := iso.Options{Kickstart: ksData, AppendArgs: strings.Fields(*cmdline), RemoveArgs: strings.Fields(*rmArgs),
		VolumeID: *volid, Timeout: *timeout, NoMD5: *noMD5, Force: *force, Replace: replace}
	if *updates != "" {
		if st, err := os.Stat(*updates); err != nil || st.IsDir() {
			return &invalidError{err: fmt.Errorf("--updates %s: not a file", *updates)}
		}
		o.Updates = *updates
	}
	for _, a := range *adds {
		src, dest, _ := strings.Cut(a, ":")
		if _, err := os.Stat(src); err != nil {
			return &invalidError{err: fmt.Errorf("--add %s: %w", a, err)}
		}
		o.Add = append(o.Add, iso.AddFile{Src: src, Dest: dest})
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return usagef("SOURCE_DATE_EPOCH=%q is not a number of seconds", s)
		}
		o.Time = time.Unix(n, 0)
	}
	start := time.Now()
	rep, err := iso.Remaster(in, out, o)
	if err != nil {
		if errors.Is(err, iso.ErrFormat) || errors.Is(err, iso.ErrNoBootConfig) {
			return &invalidError{err: err}
		}
		if strings.Contains(err.Error(), "--force") {
			return &invalidError{err: err}
		}
		if errors.Is(err, syscall.ENOSPC) {
			return &invalidError{err: fmt.Errorf("the disk holding %s is full; nothing was written: %w", out, err)}
		}
		return err
	}
	for _, w := range rep.Warnings {
		e.log.Warn(w)
	}
	if e.json {
		return writeJSON(e.stdout, map[string]any{"event": "result", "output": out, "report": rep, "seconds": time.Since(start).Seconds()})
	}
	fmt.Fprintf(e.stdout, "wrote %s (%s) in %v\n  boots with %s\n  edited %s\n", out, humanBytes(rep.Size), time.Since(start).Round(time.Millisecond),
		rep.KickstartArg, strings.Join(rep.EditedConfigs, ", "))
	if len(rep.AddedFiles) > 1 {
		fmt.Fprintf(e.stdout, "  added %d files\n", len(rep.AddedFiles))
	}
	return nil
}

// replaceArgs takes each "-R FROM TO" or "--replace FROM TO" out of args.
func replaceArgs(args []string) ([]string, [][2]string, error) {
	var rest []string
	var pairs [][2]string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		if a != "-R" && a != "--replace" {
			rest = append(rest, a)
			continue
		}
		if i+2 >= len(args) {
			return nil, nil, usagef("iso: %s wants two words, FROM TO", a)
		}
		pairs = append(pairs, [2]string{args[i+1], args[i+2]})
		i += 2
	}
	return rest, pairs, nil
}
