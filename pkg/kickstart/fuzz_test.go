package kickstart

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that any input parses or gives diagnostics without
// panicking, that rendering reproduces the input, and that rendering a
// parsed file and parsing it again gives the same diagnostics.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.ks")
	more, _ := filepath.Glob("testdata/*/*.ks")
	for _, s := range append(seeds, more...) {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data)
		}
	}
	// The differential generator's cases (TestDifferential), a sample.
	if g, err := loadGrammar(); err == nil {
		gen := append(append(generateCommands(g, RHEL9), generateSections(RHEL9)...), generateFiles(RHEL9)...)
		for i := 0; i < len(gen); i += 7 {
			f.Add([]byte(gen[i].text))
		}
	}
	f.Add([]byte("part / --size=1 --grow\n%packages --nocore\n@core\n%end\n"))
	f.Add([]byte("rootpw \"unterminated\n%post --interpreter=/bin/bash\n%end\n%end\n"))
	noFiles := Options{Version: RHEL9, ReadFile: func(string) ([]byte, error) { return nil, os.ErrNotExist }}
	f.Fuzz(func(t *testing.T, data []byte) {
		kf := Parse("fuzz.ks", data, noFiles)
		out := kf.Render()
		if !bytes.Equal(out, data) && len(kf.Includes) == 0 {
			t.Fatalf("render is not the input:\n%q\n%q", data, out)
		}
		again := Parse("fuzz.ks", out, noFiles)
		if len(again.Diagnostics) != len(kf.Diagnostics) {
			t.Fatalf("round trip changed diagnostics: %d then %d", len(kf.Diagnostics), len(again.Diagnostics))
		}
		// Edits must always yield a kickstart kiln can read back.
		if _, err := kf.SetShutdown("poweroff"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return
		}
		kf.AppendScript(Script{Kind: SectionPost, Body: "echo fuzz\n"})
		edited := Parse("fuzz.ks", kf.Render(), noFiles)
		if a, _ := edited.Shutdown(); a != "poweroff" {
			t.Fatalf("after SetShutdown the kickstart ends with %q", a)
		}
	})
}
