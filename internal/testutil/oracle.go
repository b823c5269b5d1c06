package testutil

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Case is a generated input for a differential test: its text, and the
// files beside it that it names.
type Case struct {
	Text  string
	Extra map[string]string
}

// WriteCases writes each case to dir/NNNNN/name, with its extra files
// beside it, and returns the paths.
func WriteCases(t testing.TB, dir, name string, cases []Case) []string {
	t.Helper()
	paths := make([]string, len(cases))
	for i, c := range cases {
		d := filepath.Join(dir, fmt.Sprintf("%05d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		paths[i] = filepath.Join(d, name)
		if err := os.WriteFile(paths[i], []byte(c.Text), 0o644); err != nil {
			t.Fatal(err)
		}
		for n, content := range c.Extra {
			os.WriteFile(filepath.Join(d, n), []byte(content), 0o644)
		}
	}
	return paths
}

// RunOracle runs a reference implementation's oracle script with python
// and the reference's source on PYTHONPATH, feeding it stdin, and returns
// its output lines.
func RunOracle(t testing.TB, python, script, pythonPath string, stdin []byte) [][]byte {
	t.Helper()
	cmd := exec.Command(python, script)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+pythonPath)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the oracle %s: %v\n%s", script, err, stderr.String())
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	return lines
}
