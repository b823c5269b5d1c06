package kickstart

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStripKilnSections runs the restore script's awk program, with each
// awk this host has (Anaconda's runtime has gawk; the test installer has
// busybox's), over an anaconda-ks.cfg holding kiln's sections.
func TestStripKilnSections(t *testing.T) {
	in := "%packages\n@core\n%end\n\n%post --log=/root/ks-post.log\necho user\n%end\n\n%post --nochroot\n# Added by kiln: undo the build proxy's URLs\nsed -i 's|http://10.0.2.100:1/TOKEN/||' x\n%end\n\n%post\n%end\n\n%post --nochroot\n# Added by kiln to the served copy only: report\ncurl http://10.0.2.100:1/TOKEN/report\n%end\n"
	want := "%packages\n@core\n%end\n\n%post --log=/root/ks-post.log\necho user\n%end\n\n\n%post\n%end\n\n"
	var ran int
	for _, awk := range [][]string{{"awk"}, {"busybox", "awk"}, {"gawk"}, {"mawk"}} {
		if _, err := exec.LookPath(awk[0]); err != nil {
			continue
		}
		cmd := exec.Command(awk[0], append(awk[1:], stripKilnSections)...)
		cmd.Stdin = strings.NewReader(in)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", awk, err, out)
		}
		if string(out) != want {
			t.Errorf("%v:\n%q\nwant\n%q", awk, out, want)
		}
		ran++
	}
	if ran == 0 {
		t.Fatal("no awk on this host")
	}
}
