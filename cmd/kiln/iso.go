package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/kiln-build/kiln/iso"
)

const isoUsage = `Usage:
  kiln iso inspect IMAGE.iso

inspect prints what an installer ISO is made of: the volume id, the El
Torito boot entries and the files they load, the system area (MBR and
GPT), every boot loader configuration with its kernel command lines,
including those inside the EFI boot image, the .treeinfo family, version
and arch, and whether a media checksum is implanted. --json prints the
same as one JSON object.

Example:
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
		return usagef("iso: unknown subcommand %q (inspect)", args[0])
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
