package iso

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// TestMkksisoDifferential compares kiln's kernel argument edits with
// lorax's mkksiso, run as the oracle, over every combination of the edits
// both tools make: --cmdline, --rm-args, the kickstart, --updates and
// --replace, on Rocky's isolinux.cfg and grub.cfg. The install entries'
// kernel lines must be the same argument for argument; kiln leaves the
// other entries alone (mkksiso edits them too), which is one of the
// differences the README lists.
//
// It runs when KILN_MKKSISO names lorax's src/pylorax/cmdline/mkksiso.py,
// which needs only the Python standard library.
func TestMkksisoDifferential(t *testing.T) {
	script := os.Getenv("KILN_MKKSISO")
	if script == "" {
		t.Skip("KILN_MKKSISO is not set to lorax's mkksiso.py")
	}
	type mcase struct {
		Kind    string      `json:"kind"`
		Cfg     string      `json:"cfg"`
		Cmdline string      `json:"cmdline"`
		RmArgs  string      `json:"rm_args"`
		KS      string      `json:"ks"`
		Updates string      `json:"updates"`
		VolID   string      `json:"volid"`
		Replace [][2]string `json:"replace"`
	}
	var cases []mcase
	for _, kind := range []string{"isolinux", "grub"} {
		cfg := rockyIsolinux
		if kind == "grub" {
			cfg = rockyGrub
		}
		for _, cmdline := range []string{"", "console=ttyS0", "console=ttyS0,115200n8 console=tty0", "inst.text ip=dhcp", "quiet", "a=1 b a=2", "inst.stage2=hd:LABEL=OTHER", "rd.live.check"} {
			for _, rm := range []string{"", "quiet", "rd.live.check quiet", "inst.stage2", "nomodeset", "console"} {
				for _, ks := range []string{"", "ks.cfg"} {
					for _, upd := range []string{"", "updates.img"} {
						for _, rep := range [][][2]string{nil, {{"Rocky Linux", "My Rocky"}}, {{"quiet", "splash"}}} {
							cases = append(cases, mcase{Kind: kind, Cfg: cfg, Cmdline: cmdline, RmArgs: rm, KS: ks, Updates: upd, VolID: "Rocky-9-5-x86_64-dvd", Replace: rep})
						}
					}
				}
			}
		}
	}
	var in strings.Builder
	for _, c := range cases {
		b, _ := json.Marshal(c)
		in.Write(b)
		in.WriteByte('\n')
	}
	lines := testutil.RunOracle(t, "python3", "testdata/oracle/mkksiso_oracle.py", "", []byte(in.String()))
	if len(lines) != len(cases) {
		t.Fatalf("the oracle answered %d of %d cases", len(lines), len(cases))
	}
	agree := 0
	for i, c := range cases {
		var want struct{ Out string }
		if err := json.Unmarshal(lines[i], &want); err != nil {
			t.Fatal(err)
		}
		label := UdevEscape(c.VolID)
		e := ConfigEdit{Append: strings.Fields(c.Cmdline), Remove: strings.Fields(c.RmArgs), Replace: c.Replace, Timeout: -1}
		if c.KS != "" {
			e.Append = append(e.Append, "inst.ks=hd:LABEL="+label+":/"+c.KS)
			e.Remove = append(e.Remove, "inst.ks")
		}
		if c.Updates != "" {
			e.Append = append(e.Append, "inst.updates=hd:LABEL="+label+":/"+c.Updates)
			e.Remove = append(e.Remove, "inst.updates")
		}
		var got string
		if c.Kind == "isolinux" {
			got = EditIsolinux(c.Cfg, e)
		} else {
			got = EditGrub(c.Cfg, e)
		}
		// Line by line, as words: mkksiso rewrites an edited line with
		// single spaces.
		gl, wl := strings.Split(got, "\n"), strings.Split(want.Out, "\n")
		if len(gl) != len(wl) {
			t.Errorf("case %d %+v: %d lines, mkksiso %d", i, c, len(gl), len(wl))
			continue
		}
		ok := true
		for j := range gl {
			g, w := strings.Fields(gl[j]), strings.Fields(wl[j])
			orig := strings.Fields(e.replace(strings.Split(c.Cfg, "\n")[j]))
			kernel := len(orig) > 0 && (orig[0] == "append" || orig[0] == "linux" || orig[0] == "linuxefi")
			if kernel && !isInstallEntry(orig[1:]) {
				// kiln leaves rescue and memory-test entries as they
				// were (with --replace made).
				w = orig
			}
			if strings.Join(g, " ") != strings.Join(w, " ") {
				t.Errorf("case %d %+v, line %d:\n kiln    %s\n mkksiso %s", i, c, j+1, strings.Join(g, " "), strings.Join(w, " "))
				ok = false
			}
		}
		if ok {
			agree++
		}
	}
	t.Logf("kiln and mkksiso agree on %d of %d cases", agree, len(cases))
}
