package anaconda

import (
	"crypto/rand"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/pkg/kickstart"
	"github.com/kiln-build/kiln/pkg/parttable"
)

// Partition type GUIDs (UEFI 2.10 section 5.3.3, and the Discoverable
// Partitions Specification for the Linux ones), as blivet sets them.
var (
	BIOSBoot        = parttable.TypeGUIDBIOSBoot
	ESP             = parttable.TypeGUIDESP
	Swap            = parttable.TypeGUIDLinuxSwap
	LinuxFilesystem = parttable.TypeGUIDLinuxFilesystem
)

// Volume is one partition of the installed disk and what goes on it.
type Volume struct {
	Mount  string // "/", "/boot", "/boot/efi"; "" for swap and biosboot
	FSType string // xfs, ext4, ext3, ext2, vfat, swap or biosboot
	Label  string // the file system label, if the kickstart gave one
	MinMiB uint64 // the size asked for
	MaxMiB uint64 // the most it may grow to; 0 is no limit
	Grow   bool

	// Set by PlanStorage.
	FirstLBA, LastLBA uint64
	UUID              string // the file system's UUID, as blkid shows it
}

// Type is the GPT partition type of the volume.
func (v *Volume) Type() parttable.GUID {
	switch v.FSType {
	case "biosboot":
		return BIOSBoot
	case "vfat":
		if v.Mount == "/boot/efi" {
			return ESP
		}
	case "swap":
		return Swap
	}
	return LinuxFilesystem
}

// Layout is the disk's plan: every volume, in disk order.
type Layout struct {
	Volumes []*Volume
}

// Find returns the volume mounted at mount, or nil.
func (l *Layout) Find(mount string) *Volume {
	for _, v := range l.Volumes {
		if v.Mount == mount {
			return v
		}
	}
	return nil
}

// Mounts returns the volumes with mount points, parents before children.
func (l *Layout) Mounts() []*Volume {
	var out []*Volume
	for _, v := range l.Volumes {
		if v.Mount != "" {
			out = append(out, v)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return strings.Count(out[i].Mount, "/") < strings.Count(out[j].Mount, "/") || out[i].Mount == "/"
	})
	return out
}

// Fstab is /etc/fstab for the layout, by UUID, as Anaconda writes it.
func (l *Layout) Fstab() string {
	var sb strings.Builder
	sb.WriteString("#\n# /etc/fstab\n# Created by anaconda (the kiln test installer)\n#\n")
	for _, v := range l.Mounts() {
		opts, pass := "defaults", "0 0"
		if v.FSType == "vfat" {
			opts, pass = "umask=0077,shortname=winnt", "0 2"
		}
		fmt.Fprintf(&sb, "UUID=%-36s %-15s %-7s %s %s\n", v.UUID, v.Mount, v.FSType, opts, pass)
	}
	for _, v := range l.Volumes {
		if v.FSType == "swap" {
			fmt.Fprintf(&sb, "UUID=%-36s %-15s %-7s defaults 0 0\n", v.UUID, "none", "swap")
		}
	}
	return sb.String()
}

// Machine is what partitioning depends on beyond the kickstart.
type Machine struct {
	Disk   string // the disk's name, "vda"
	Size   int64  // its size in bytes
	UEFI   bool   // booted by UEFI firmware
	RAMMiB uint64 // the memory, for swap's recommended size
}

// The sizes of Anaconda's default partitioning on Rocky 9, as CONTRACT.md
// cites them: the platform's boot partitions (blivet's platform.py), then
// /boot, / and /home from the product's default_partitioning.
const (
	defaultPartMiB = 500 // a part line with no --size (blivet's DEFAULT_PART_SIZE)
	bootMiB        = 1024
	rootMinMiB     = 1024
	rootMaxMiB     = 70 * 1024
	homeMinMiB     = 500
	homeFreeMiB    = 50 * 1024 // /home is made only when this much is free
	espMinMiB      = 200
	espMaxMiB      = 600
)

// SwapSuggestion is blivet's recommended swap size (devicelibs/swap.py):
// twice the RAM below 2 GiB, the RAM up to 8 GiB, half of it up to 64 GiB,
// else 4 GiB; and, without hibernation, at most a tenth of the disk.
func SwapSuggestion(ramMiB, diskMiB uint64) uint64 {
	var s uint64
	switch {
	case ramMiB < 2048:
		s = 2 * ramMiB
	case ramMiB < 8192:
		s = ramMiB
	case ramMiB < 65536:
		s = ramMiB / 2
	default:
		s = 4096
	}
	if diskMiB > 0 && s > diskMiB/10 {
		s = diskMiB / 10
	}
	return s
}

// PlanStorage lays out the disk as the kickstart's storage commands ask:
// clearpart, zerombr, ignoredisk, reqpart, autopart, part, and volgroup
// and logvol, whose logical volumes become plain partitions (the test
// installer has no LVM). The sizes are in MiB, aligned to 1 MiB as blivet
// aligns them; growable volumes share the space left in proportion to
// their base sizes, up to their maxima.
func PlanStorage(ks *kickstart.File, m Machine) (*Layout, error) {
	p := ks.Partitioning()
	if p.AutoPart == nil && len(p.Partitions) == 0 && len(p.LogVols) == 0 {
		return nil, &Fatal{"storage configuration failed: the kickstart has no autopart or part lines"}
	}
	if c := p.IgnoreDisk; c != nil {
		if v, ok := c.Value("--only-use"); ok && !hasDisk(v, m.Disk) {
			return nil, &Fatal{fmt.Sprintf("storage configuration failed: ignoredisk --only-use=%s leaves no disks (the machine has %s)", v, m.Disk)}
		}
		if v, ok := c.Value("--drives"); ok && hasDisk(v, m.Disk) {
			return nil, &Fatal{fmt.Sprintf("storage configuration failed: ignoredisk --drives=%s leaves no disks", v)}
		}
	}
	if len(p.Raids) > 0 {
		return nil, &Fatal{fmt.Sprintf("storage configuration failed: %s: the test installer does not make RAID", lineOf(p.Raids[0]))}
	}
	diskMiB := uint64(m.Size >> 20)
	l := &Layout{}
	platform := func() {
		if m.UEFI {
			l.Volumes = append(l.Volumes, &Volume{Mount: "/boot/efi", FSType: "vfat", MinMiB: espMinMiB, MaxMiB: espMaxMiB, Grow: true})
		} else {
			l.Volumes = append(l.Volumes, &Volume{FSType: "biosboot", MinMiB: 1})
		}
	}
	if c := p.AutoPart; c != nil {
		fstype := "xfs"
		if v, ok := c.Value("--fstype"); ok {
			fstype = v
		}
		if t, _ := c.Value("--type"); t == "btrfs" {
			return nil, &Fatal{"storage configuration failed: autopart --type=btrfs: the test installer has no btrfs"}
		}
		platform()
		if !c.Has("--noboot") {
			l.Volumes = append(l.Volumes, &Volume{Mount: "/boot", FSType: fstype, MinMiB: bootMiB})
		}
		l.Volumes = append(l.Volumes, &Volume{Mount: "/", FSType: fstype, MinMiB: rootMinMiB, MaxMiB: rootMaxMiB, Grow: true})
		var swap uint64
		if !c.Has("--noswap") {
			swap = SwapSuggestion(m.RAMMiB, diskMiB)
		}
		if !c.Has("--nohome") && diskMiB >= used(l)+swap+homeFreeMiB {
			l.Volumes = append(l.Volumes, &Volume{Mount: "/home", FSType: fstype, MinMiB: homeMinMiB, Grow: true})
		}
		if swap > 0 {
			l.Volumes = append(l.Volumes, &Volume{FSType: "swap", MinMiB: swap})
		}
	} else {
		if c := p.ReqPart; c != nil {
			platform()
			if c.Has("--add-boot") {
				l.Volumes = append(l.Volumes, &Volume{Mount: "/boot", FSType: "xfs", MinMiB: bootMiB})
			}
		}
		cmds := make([]*kickstart.Command, 0, len(p.Partitions)+len(p.LogVols))
		for _, pt := range p.Partitions {
			cmds = append(cmds, pt.Command)
		}
		cmds = append(cmds, p.LogVols...)
		for _, c := range cmds {
			v, err := volume(c, m, diskMiB)
			if err != nil {
				return nil, err
			}
			if v == nil {
				continue
			}
			if v.Mount != "" && l.Find(v.Mount) != nil {
				return nil, &Fatal{fmt.Sprintf("storage configuration failed: %s: the mount point %s is given twice", lineOf(c), v.Mount)}
			}
			l.Volumes = append(l.Volumes, v)
		}
	}
	if l.Find("/") == nil {
		return nil, &Fatal{"storage configuration failed: you have not defined a root partition (/), which is required for installation of Rocky Linux to continue"}
	}
	location := ""
	if bl := ks.Commands("bootloader"); len(bl) > 0 {
		location, _ = bl[len(bl)-1].Value("--location")
	}
	if location != "none" {
		if m.UEFI && (l.Find("/boot/efi") == nil || l.Find("/boot/efi").FSType != "vfat") {
			return nil, &Fatal{"storage configuration failed: for a UEFI installation, you must include an EFI System Partition on a GPT-formatted disk, mounted at /boot/efi"}
		}
		if !m.UEFI && !hasType(l, "biosboot") {
			return nil, &Fatal{"storage configuration failed: your BIOS-based system needs a special partition to boot from a GPT disk label. To continue, please create a 1MiB 'biosboot' type partition"}
		}
	}
	if err := place(l, m.Size); err != nil {
		return nil, err
	}
	for _, v := range l.Volumes {
		v.UUID = newUUID(v.FSType)
	}
	return l, nil
}

func hasDisk(list, disk string) bool {
	for _, d := range strings.Split(list, ",") {
		if strings.TrimPrefix(strings.TrimSpace(d), "/dev/") == disk {
			return true
		}
	}
	return false
}

func hasType(l *Layout, fstype string) bool {
	for _, v := range l.Volumes {
		if v.FSType == fstype {
			return true
		}
	}
	return false
}

func used(l *Layout) uint64 {
	var n uint64
	for _, v := range l.Volumes {
		n += v.MinMiB
	}
	return n
}

// volume reads one part or logvol line; nil is a line that makes no file
// system of its own (an LVM physical volume).
func volume(c *kickstart.Command, m Machine, diskMiB uint64) (*Volume, error) {
	if len(c.Positionals) == 0 {
		return nil, &Fatal{fmt.Sprintf("storage configuration failed: %s: no mount point", lineOf(c))}
	}
	mount := c.Positionals[0]
	if strings.HasPrefix(mount, "pv.") {
		return nil, nil
	}
	if strings.HasPrefix(mount, "raid.") || strings.HasPrefix(mount, "btrfs.") {
		return nil, &Fatal{fmt.Sprintf("storage configuration failed: %s: the test installer does not make %s members", lineOf(c), strings.TrimSuffix(mount[:strings.Index(mount, ".")+1], "."))}
	}
	if d, ok := c.Value("--ondisk"); ok && strings.TrimPrefix(d, "/dev/") != m.Disk {
		return nil, &Fatal{fmt.Sprintf("storage configuration failed: %s: disk %q given in %s command does not exist", lineOf(c), d, c.Name)}
	}
	v := &Volume{Mount: mount, FSType: "xfs", MinMiB: defaultPartMiB, Grow: c.Has("--grow")}
	v.Label, _ = c.Value("--label")
	if t, ok := c.Value("--fstype"); ok {
		v.FSType = t
	}
	switch {
	case mount == "swap":
		v.Mount, v.FSType = "", "swap"
	case mount == "biosboot":
		v.Mount, v.FSType, v.MinMiB = "", "biosboot", 1
	case v.FSType == "biosboot", v.FSType == "prepboot":
		v.Mount, v.FSType, v.MinMiB = "", "biosboot", 1
	case v.FSType == "efi" || mount == "/boot/efi" && v.FSType == "xfs":
		v.FSType, v.MinMiB, v.MaxMiB = "vfat", espMinMiB, espMaxMiB
	case !strings.HasPrefix(mount, "/"):
		return nil, &Fatal{fmt.Sprintf("storage configuration failed: %s: the mount point %q is not an absolute path", lineOf(c), mount)}
	}
	switch v.FSType {
	case "xfs", "ext4", "ext3", "ext2", "vfat", "swap", "biosboot":
	default:
		return nil, &Fatal{fmt.Sprintf("storage configuration failed: %s: the test installer cannot make %s file systems", lineOf(c), v.FSType)}
	}
	if v.FSType == "swap" && (c.Has("--recommended") || c.Has("--hibernation")) {
		v.MinMiB = SwapSuggestion(m.RAMMiB, diskMiB)
	}
	if s, ok := c.Value("--size"); ok {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n == 0 {
			return nil, &Fatal{fmt.Sprintf("storage configuration failed: %s: --size=%s is not a size in MiB", lineOf(c), s)}
		}
		v.MinMiB = n
	}
	if s, ok := c.Value("--maxsize"); ok {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, &Fatal{fmt.Sprintf("storage configuration failed: %s: --maxsize=%s is not a size in MiB", lineOf(c), s)}
		}
		v.MaxMiB = n
	}
	return v, nil
}

// place gives each volume its sectors: 1 MiB aligned from LBA 2048, the
// space left over shared by the growable volumes.
func place(l *Layout, size int64) error {
	_, last := UsableLBAs(size)
	avail := (last + 1 - 2048) / 2048 // whole MiB from the first aligned sector
	need := used(l)
	if need > avail {
		return &Fatal{fmt.Sprintf("storage configuration failed: not enough space in file systems for the current software selection: the layout needs %d MiB, the disk has %d MiB", need, avail)}
	}
	sizes := make([]uint64, len(l.Volumes))
	for i, v := range l.Volumes {
		sizes[i] = v.MinMiB
	}
	// Each round shares what is left among the volumes still growing,
	// by base size; one that reaches its maximum stops and the rest
	// share again.
	free := avail - need
	for free > 0 {
		var base uint64
		for i, v := range l.Volumes {
			if v.Grow && (v.MaxMiB == 0 || sizes[i] < v.MaxMiB) {
				base += v.MinMiB
			}
		}
		if base == 0 {
			break
		}
		given := uint64(0)
		for i, v := range l.Volumes {
			if !v.Grow || v.MaxMiB != 0 && sizes[i] >= v.MaxMiB {
				continue
			}
			share := free * v.MinMiB / base
			if share == 0 {
				share = 1
			}
			if v.MaxMiB != 0 && sizes[i]+share > v.MaxMiB {
				share = v.MaxMiB - sizes[i]
			}
			if share > free-given {
				share = free - given
			}
			sizes[i] += share
			given += share
		}
		if given == 0 {
			break
		}
		free -= given
	}
	lba := uint64(2048)
	for i, v := range l.Volumes {
		v.FirstLBA = lba
		lba += sizes[i] * 2048
		v.LastLBA = lba - 1
	}
	return nil
}

// newUUID is a random file system identity in the form blkid shows: a
// version 4 UUID, or for FAT a volume serial number.
func newUUID(fstype string) string {
	var b [16]byte
	rand.Read(b[:])
	if fstype == "vfat" {
		return fmt.Sprintf("%02X%02X-%02X%02X", b[0], b[1], b[2], b[3])
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Partitions are the GPT entries of the layout.
func (l *Layout) Partitions() []Partition {
	var out []Partition
	for _, v := range l.Volumes {
		name := ""
		if v.Type() == ESP {
			name = "EFI System Partition"
		}
		out = append(out, Partition{Name: name, Type: v.Type(), FirstLBA: v.FirstLBA, LastLBA: v.LastLBA})
	}
	return out
}

// lineOf names a kickstart line in an error, as Anaconda's storage
// checker quotes the command.
func lineOf(c *kickstart.Command) string {
	return fmt.Sprintf("line %d (%s)", c.Line.Num, strings.TrimSpace(c.Line.Text))
}
