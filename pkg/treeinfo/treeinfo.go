// Package treeinfo reads the .treeinfo file of a distribution's install
// tree (productmd's treeinfo format, and the [general] form before it):
// what the tree is, its boot files and its repositories. It is not ISO
// 9660; install trees on mirrors have one too.
package treeinfo

import (
	"sort"
	"strings"
)

// TreeInfo is what kiln reads of a .treeinfo: the distribution, and the
// boot files of the tree's architecture (productmd's treeinfo format,
// [images-ARCH] and [stage2]).
type TreeInfo struct {
	Family   string   `json:"family"`
	Version  string   `json:"version"`
	Arch     string   `json:"arch"`
	Kernel   string   `json:"kernel,omitempty"`   // e.g. images/pxeboot/vmlinuz
	Initrd   string   `json:"initrd,omitempty"`   // e.g. images/pxeboot/initrd.img
	Stage2   string   `json:"stage2,omitempty"`   // e.g. images/install.img
	Variants []string `json:"variants,omitempty"` // the repository directories, e.g. BaseOS
}

// Parse reads a .treeinfo in either format: [general] (productmd
// before 1.0) or [release] and [tree].
func Parse(s string) *TreeInfo {
	sections := map[string]map[string]string{}
	cur := ""
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			cur = strings.Trim(line, "[]")
			sections[cur] = map[string]string{}
		case strings.Contains(line, "=") && cur != "":
			k, v, _ := strings.Cut(line, "=")
			sections[cur][strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	t := &TreeInfo{}
	pick := func(vals ...string) string {
		for _, v := range vals {
			if v != "" {
				return v
			}
		}
		return ""
	}
	t.Family = pick(sections["release"]["name"], sections["general"]["family"])
	t.Version = pick(sections["release"]["version"], sections["general"]["version"])
	t.Arch = pick(sections["tree"]["arch"], sections["general"]["arch"])
	img := sections["images-"+t.Arch]
	t.Kernel, t.Initrd = img["kernel"], img["initrd"]
	t.Stage2 = sections["stage2"]["mainimage"]
	names := make([]string, 0, len(sections))
	for name := range sections {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if r := sections[name]["repository"]; strings.HasPrefix(name, "variant-") && r != "" {
			t.Variants = append(t.Variants, r)
		}
	}
	return t
}
