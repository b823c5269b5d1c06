package kickstart

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestPykickstartVerdicts keeps what TestDifferential taught without the
// oracle: pykickstart's verdicts, recorded, on one generated case of each
// class that once found kiln disagreeing.
func TestPykickstartVerdicts(t *testing.T) {
	f, err := os.Open("testdata/pykickstart-verdicts.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		c := strings.Split(sc.Text(), "\t")
		if len(c) != 6 {
			t.Fatalf("bad row %q", sc.Text())
		}
		v, err := ParseVersion(c[0])
		if err != nil {
			t.Fatal(err)
		}
		text, err := strconv.Unquote(c[5])
		if err != nil {
			t.Fatalf("%s: %v", c[5], err)
		}
		line, _ := strconv.Atoi(c[3])
		n++
		kf := Parse("ks.cfg", []byte(text), Options{Version: v, ReadFile: func(string) ([]byte, error) { return nil, os.ErrNotExist }})
		parseOK, strict := len(kf.Errors()) == 0, strictOK(kf)
		if parseOK != (c[1] == "ok") || strict != (c[2] == "ok") {
			t.Errorf("%s %s %q: pykickstart parse=%s strict=%s, kiln parse ok=%v strict ok=%v:\n%s", c[0], c[4], text, c[1], c[2], parseOK, strict, dump(kf.Diagnostics))
			continue
		}
		if !parseOK && line > 0 && kf.Errors()[0].Line != line {
			t.Errorf("%s %s %q: pykickstart at line %d, kiln %s", c[0], c[4], text, line, kf.Errors()[0])
		}
	}
	if n == 0 {
		t.Fatal("no cases")
	}
	t.Logf("%d cases", n)
}
