package unixmode

import (
	"io/fs"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, m := range []fs.FileMode{0o644, 0o755 | fs.ModeDir, 0o777 | fs.ModeSymlink, 0o755 | fs.ModeSetuid, fs.ModeSetgid | 0o750,
		fs.ModeSticky | fs.ModeDir | 0o777, fs.ModeDevice | fs.ModeCharDevice | 0o600, fs.ModeDevice | 0o660, fs.ModeNamedPipe | 0o644, fs.ModeSocket | 0o755} {
		if got := FileMode(Mode(m)); got != m {
			t.Errorf("%v -> %o -> %v", m, Mode(m), got)
		}
	}
	if Mode(0o644) != 0o100644 || Mode(fs.ModeDir|0o755) != 0o40755 {
		t.Errorf("Mode(0644) = %o", Mode(0o644))
	}
}
