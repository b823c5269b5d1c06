package initrd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/kiln-build/kiln/internal/testutil"
)

// records reads an archive back with u-root's reader: name, mode, content.
func records(t *testing.T, data []byte) []string {
	t.Helper()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(data)))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		var body []byte
		if r.ReaderAt != nil {
			body, _ = io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.Info.FileSize)))
		}
		out = append(out, fmt.Sprintf("%s %o %s", r.Info.Name, r.Info.Mode, body))
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	entries := []Entry{
		{Name: "etc/kiln/ks.cfg", Mode: 0o600, Content: strings.NewReader("text\n"), Size: 5},
		{Name: "bin/sh", Mode: fs.ModeSymlink, Target: "busybox"},
		{Name: "init", Mode: 0o755, Content: strings.NewReader("#!/bin/sh\n"), Size: 10},
		{Name: "empty", Mode: 0o644, Content: strings.NewReader(""), Size: 0},
		{Name: "dev", Mode: fs.ModeDir | 0o755},
		{Name: "dev/console", Mode: fs.ModeCharDevice | 0o600, Major: 5, Minor: 1},
	}
	if err := WriteArchive(&buf, entries, 1700000000); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not 4-byte aligned", buf.Len())
	}
	got := records(t, buf.Bytes())
	want := []string{
		"bin 40755 ", "bin/sh 120777 busybox", "dev 40755 ", "dev/console 20600 ", "empty 100644 ",
		"etc 40755 ", "etc/kiln 40755 ", "etc/kiln/ks.cfg 100600 text\n",
		"init 100755 #!/bin/sh\n",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("records:\n%q\nwant\n%q", got, want)
	}
	// The same entries in another order give the same bytes.
	var again bytes.Buffer
	WriteArchive(&again, []Entry{entries[5], entries[3], entries[1], entries[0], entries[4], entries[2]}, 1700000000)
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("the archive depends on the entries' order")
	}
}

// TestDuplicateRefused: u-root's newc writer drops a second record of one
// name without a word (its DedupWriter); kiln refuses it instead.
func TestDuplicateRefused(t *testing.T) {
	var buf bytes.Buffer
	err := WriteArchive(&buf, []Entry{
		{Name: "ks.cfg", Mode: 0o600, Content: strings.NewReader("a"), Size: 1},
		{Name: "/ks.cfg", Mode: 0o600, Content: strings.NewReader("b"), Size: 1},
	}, 0)
	if err == nil || !strings.Contains(err.Error(), "two entries with one name") {
		t.Errorf("err = %v", err)
	}
	rw := cpio.Newc.Writer(&buf)
	buf.Reset()
	cpio.WriteRecords(rw, []cpio.Record{cpio.StaticFile("ks.cfg", "a", 0o600), cpio.StaticFile("ks.cfg", "b", 0o600)})
	if n := strings.Count(buf.String(), "ks.cfg"); n != 1 {
		t.Logf("u-root's writer now keeps both records (%d); the check above may be dropped", n)
	}
}

func TestAppendReadsAsTwoArchives(t *testing.T) {
	var first bytes.Buffer
	WriteArchive(&first, []Entry{{Name: "a", Mode: 0o644, Content: strings.NewReader("xyz"), Size: 3}}, 0)
	first.WriteString("\x00\x00") // an initrd whose length is not a multiple of 4
	var out bytes.Buffer
	n, err := Append(&out, bytes.NewReader(first.Bytes()), []Entry{{Name: "ks.cfg", Mode: 0o644, Content: strings.NewReader("text\n"), Size: 5}}, 0)
	if err != nil || n != int64(out.Len()) {
		t.Fatalf("Append = %d, %v (wrote %d)", n, err, out.Len())
	}
	// The second archive starts on a 4-byte boundary, after the first
	// and its padding, as the kernel wants.
	second := out.Bytes()[first.Len()+2:]
	if !bytes.HasPrefix(second, []byte("070701")) {
		t.Fatalf("no archive at %d: %q", first.Len()+2, second[:16])
	}
	if got := strings.Join(records(t, second), ","); got != "ks.cfg 100644 text\n" {
		t.Errorf("records = %s", got)
	}
}

// TestCpioReadsIt checks the archive against GNU cpio, an outside reader.
func TestCpioReadsIt(t *testing.T) {
	cpioTool := testutil.RequireTool(t, "cpio")
	var buf bytes.Buffer
	WriteArchive(&buf, []Entry{
		{Name: "dir/file.txt", Mode: 0o640, Content: strings.NewReader("hello"), Size: 5},
		{Name: "link", Mode: fs.ModeSymlink, Target: "dir/file.txt"},
		{Name: "dev/console", Mode: fs.ModeCharDevice | 0o600, Major: 5, Minor: 1},
	}, 0)
	cmd := exec.Command(cpioTool, "-itv", "--quiet")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio: %v\n%s", err, out)
	}
	for _, want := range []string{"drwxr-xr-x", "-rw-r-----", "dir/file.txt", "link -> dir/file.txt", "crw-------", "5,"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cpio -itv output lacks %q:\n%s", want, out)
		}
	}
}

func TestWriterErrors(t *testing.T) {
	err := WriteArchive(failWriter{}, []Entry{{Name: "d", Mode: fs.ModeDir | 0o755}}, 0)
	if err == nil || !errors.Is(err, errFail) {
		t.Errorf("write error not reported: %v", err)
	}
	err = WriteArchive(io.Discard, []Entry{{Name: "f", Mode: 0o644, Content: strings.NewReader("123"), Size: 4}}, 0)
	if err == nil {
		t.Error("a short file was written")
	}
}

var errFail = errors.New("disk full")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errFail }
