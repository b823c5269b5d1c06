package build

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/pkg/kickstart"
	"github.com/kiln-build/kiln/pkg/tdl"
)

// TestPlanLeavesInputsAlone: Plan works on its own copy of the
// kickstart. Twice on one Options gives the same plan, and the user's
// kickstart, with a TDL applied to the build's copy, renders as it was
// read.
func TestPlanLeavesInputsAlone(t *testing.T) {
	testutil.RequireTool(t, "qemu-system-x86_64")
	testutil.RequireTool(t, "qemu-img")
	orig := []byte("text\nrootpw --lock\nautopart\n%packages\n@core\n%end\n")
	ks := kickstart.Parse("k.ks", orig, kickstart.Options{Version: kickstart.RHEL9})
	tpl, err := tdl.Parse([]byte(`<template><name>t</name><os><name>Rocky-9</name><version>9</version><arch>x86_64</arch>
<install type='url'><url>http://mirror.example/rocky/9/BaseOS/x86_64/os/</url></install></os>
<commands><command name='marker'>echo hi > /root/marker</command></commands></template>`))
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Kickstart: ks, Original: orig, TDL: tpl, TDLPath: "t.tdl", Output: filepath.Join(t.TempDir(), "out"), Formats: []string{"raw"}, DiskSize: 1 << 30}
	first, err := Plan(o)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Plan(o)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, second) {
		t.Errorf("two plans of one Options differ:\n%+v\n%+v", first, second)
	}
	if got := string(ks.Render()); got != string(orig) {
		t.Errorf("the caller's kickstart changed:\n%s", got)
	}
	if strings.Count(string(ks.Render()), "%post") != 0 {
		t.Errorf("the TDL's %%post reached the caller's kickstart")
	}
}
