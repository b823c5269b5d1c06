package initrd

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os/exec"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	entries := []Entry{
		{Name: "etc/kiln/ks.cfg", Mode: 0o600, Content: strings.NewReader("text\n"), Size: 5},
		{Name: "bin/sh", Mode: fs.ModeSymlink, Target: "busybox"},
		{Name: "init", Mode: 0o755, Content: strings.NewReader("#!/bin/sh\n"), Size: 10},
		{Name: "empty", Mode: 0o644, Content: strings.NewReader(""), Size: 0},
	}
	if err := WriteArchive(&buf, entries, 1700000000); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not 4-byte aligned", buf.Len())
	}
	r := NewReader(bytes.NewReader(buf.Bytes()))
	var got []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(r)
		got = append(got, h.Name+" "+h.Mode.String()+" "+string(data))
		if h.MTime != 1700000000 && !h.IsTrailer() {
			t.Errorf("%s: mtime %d", h.Name, h.MTime)
		}
	}
	want := []string{
		"bin drwxr-xr-x ", "bin/sh Lrwxrwxrwx busybox", "empty -rw-r--r-- ",
		"etc drwxr-xr-x ", "etc/kiln drwxr-xr-x ", "etc/kiln/ks.cfg -rw------- text\n",
		"init -rwxr-xr-x #!/bin/sh\n", "TRAILER!!! ---------- ",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("records:\n%q\nwant\n%q", got, want)
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
	r := NewReader(&out)
	var names []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if got := strings.Join(names, ","); got != "a,TRAILER!!!,ks.cfg,TRAILER!!!" {
		t.Errorf("records = %s", got)
	}
}

// TestCpioReadsIt checks the writer against GNU cpio, an outside reader.
func TestCpioReadsIt(t *testing.T) {
	cpio := testutil.RequireTool(t, "cpio")
	var buf bytes.Buffer
	WriteArchive(&buf, []Entry{
		{Name: "dir/file.txt", Mode: 0o640, Content: strings.NewReader("hello"), Size: 5},
		{Name: "link", Mode: fs.ModeSymlink, Target: "dir/file.txt"},
	}, 0)
	cmd := exec.Command(cpio, "-itv", "--quiet")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio: %v\n%s", err, out)
	}
	for _, want := range []string{"drwxr-xr-x", "-rw-r-----", "dir/file.txt", "link -> dir/file.txt"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cpio -itv output lacks %q:\n%s", want, out)
		}
	}
}

func TestWriterErrors(t *testing.T) {
	w := NewWriter(io.Discard)
	w.WriteHeader(&Header{Name: "f", Mode: 0o644, Size: 4})
	if _, err := w.Write([]byte("12345")); err == nil {
		t.Error("writing past the record size succeeded")
	}
	if err := w.Close(); err == nil {
		t.Error("the error is not sticky")
	}
	w = NewWriter(io.Discard)
	w.WriteHeader(&Header{Name: "f", Mode: 0o644, Size: 4})
	if err := w.Close(); err == nil {
		t.Error("closing a short record succeeded")
	}
	w = NewWriter(failWriter{})
	if err := w.Dir("d", 0o755); err == nil || !errors.Is(err, errFail) {
		t.Errorf("write error not reported: %v", err)
	}
}

var errFail = errors.New("disk full")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errFail }

func TestReaderRejectsGarbage(t *testing.T) {
	for _, in := range []string{"070701zzzzzzzz", "hello world, not cpio", "0707010000"} {
		r := NewReader(strings.NewReader(in))
		if _, err := r.Next(); err == nil || err == io.EOF {
			t.Errorf("%q: err = %v", in, err)
		}
	}
}

func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	WriteArchive(&buf, []Entry{{Name: "a/b", Mode: 0o644, Content: strings.NewReader("xy"), Size: 2}}, 0)
	f.Add(buf.Bytes())
	f.Add([]byte("070701"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		for i := 0; i < 10000; i++ {
			h, err := r.Next()
			if err != nil {
				return
			}
			if h.Size < 0 {
				t.Fatal("negative size")
			}
			io.Copy(io.Discard, r)
		}
	})
}
