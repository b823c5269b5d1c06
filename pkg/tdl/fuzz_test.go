package tdl

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that any input parses or gives an *Error, never
// panicking, and that whatever parses can be turned into a kickstart.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.tdl")
	for _, s := range seeds {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data)
		}
	}
	// The differential generator's cases (TestDifferential), a sample.
	for i, c := range generateTDLs() {
		if i%5 == 0 {
			f.Add([]byte(c.text))
		}
	}
	f.Add([]byte(head + `<disk><size>1 ZB</size></disk></template>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tpl, err := Parse(data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error is %T, not *Error: %v", err, err)
			}
			return
		}
		if tpl.DiskSize == nil {
			t.Fatal("parsed template has no disk size")
		}
		ks, err := tpl.BaseKickstart()
		if err != nil {
			return
		}
		if err := tpl.Apply(ks); err != nil {
			return
		}
		_ = ks.Render()
	})
}
