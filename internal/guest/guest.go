// Package guest builds what kiln's VM tests boot: a static Go program as
// /init of an initramfs, with the Debian kernel modules it needs.
package guest

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/pkg/initrd"
)

// Kernel returns the newest installed kernel image and its version.
func Kernel() (path, version string, err error) {
	images, _ := filepath.Glob("/boot/vmlinuz-*")
	sort.Strings(images)
	for i := len(images) - 1; i >= 0; i-- {
		v := strings.TrimPrefix(filepath.Base(images[i]), "vmlinuz-")
		if _, err := os.Stat(filepath.Join("/lib/modules", v, "modules.dep")); err == nil {
			return images[i], v, nil
		}
	}
	return "", "", fmt.Errorf("no kernel with modules in /boot (install linux-image-amd64)")
}

// Modules returns the paths of the named modules and everything they
// depend on, dependencies first, from the kernel's modules.dep.
func Modules(kver string, names ...string) ([]string, error) {
	root := filepath.Join("/lib/modules", kver)
	f, err := os.Open(filepath.Join(root, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{}
	byName := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		base := filepath.Base(mod)
		if i := strings.Index(base, ".ko"); i >= 0 {
			base = base[:i]
		}
		byName[strings.ReplaceAll(base, "-", "_")] = mod
	}
	var order []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(m string) {
		if seen[m] {
			return
		}
		seen[m] = true
		// modules.dep lists every dependency, most basic last.
		d := deps[m]
		for i := len(d) - 1; i >= 0; i-- {
			visit(d[i])
		}
		order = append(order, filepath.Join(root, m))
	}
	for _, n := range names {
		m, ok := byName[strings.ReplaceAll(n, "-", "_")]
		if !ok {
			// Built into the kernel, or absent: modules.builtin says which.
			builtin, _ := os.ReadFile(filepath.Join(root, "modules.builtin"))
			if bytes.Contains(builtin, []byte("/"+n+".ko")) {
				continue
			}
			return nil, fmt.Errorf("module %s not found for kernel %s", n, kver)
		}
		visit(m)
	}
	return order, nil
}

// BuildGo builds the Go main package pkg as a static binary at out.
func BuildGo(pkg, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// Initramfs writes an initramfs to path: init as /init, /dev/console, the
// modules under /modules with their load order in /modules/order, and
// extra entries.
func Initramfs(path, init string, modules []string, extra []initrd.Entry) error {
	var entries []initrd.Entry
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	add := func(name, src string, mode fs.FileMode) error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		files = append(files, f)
		st, err := f.Stat()
		if err != nil {
			return err
		}
		entries = append(entries, initrd.Entry{Name: name, Mode: mode, Content: f, Size: st.Size()})
		return nil
	}
	if err := add("init", init, 0o755); err != nil {
		return err
	}
	var order []string
	for i, m := range modules {
		name := fmt.Sprintf("%02d-%s", i, filepath.Base(m))
		order = append(order, name)
		if err := add("modules/"+name, m, 0o644); err != nil {
			return err
		}
	}
	list := strings.Join(order, "\n") + "\n"
	entries = append(entries, initrd.Entry{Name: "modules/order", Mode: 0o644, Content: strings.NewReader(list), Size: int64(len(list))})
	entries = append(entries, initrd.Entry{Name: "dev", Mode: fs.ModeDir | 0o755})
	// /dev/console must exist before devtmpfs is mounted, or init starts
	// with no stdin and stdout.
	entries = append(entries, initrd.Entry{Name: "dev/console", Mode: fs.ModeCharDevice | 0o600, Major: 5, Minor: 1})
	entries = append(entries, extra...)
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(out)
	if err := initrd.WriteArchive(w, entries, 0); err != nil {
		out.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
