package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kiln runs the real CLI in-process and returns its exit code and output.
func kiln(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return exitCode(err), out.String(), errb.String() + errString(err)
}

func errString(err error) string {
	if err == nil || isReported(err) {
		return ""
	}
	return "kiln: " + err.Error() + "\n"
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExitCodes(t *testing.T) {
	valid := writeFile(t, "ok.ks", "text\nlang en_US.UTF-8\nrootpw --lock\nautopart\n")
	invalid := writeFile(t, "bad.ks", "text\nbogus\n")
	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"help", []string{"--help"}, 0, "Exit codes:"},
		{"no command", nil, 2, "Commands:"},
		{"unknown command", []string{"frob"}, 2, ""},
		{"unknown flag", []string{"ks", "validate", "--frob", valid}, 2, ""},
		{"valid", []string{"ks", "validate", valid}, 0, "valid RHEL9 kickstart"},
		{"invalid", []string{"ks", "validate", invalid}, 3, ""},
		{"missing file", []string{"ks", "validate", "/nonexistent.ks"}, 3, ""},
		{"bad version", []string{"ks", "validate", "--version", "RHEL99", valid}, 2, ""},
		{"ks help", []string{"ks", "--help"}, 0, "kiln ks validate"},
		{"validate help", []string{"ks", "validate", "--help"}, 0, "--strict"},
		{"version", []string{"version"}, 0, "go go1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := kiln(t, "", tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if !strings.Contains(out, tt.out) {
				t.Errorf("stdout %q does not contain %q", out, tt.out)
			}
		})
	}
}

func TestValidateScenario(t *testing.T) {
	code, _, errOut := kiln(t, "", "ks", "validate", "../../pkg/kickstart/testdata/my-rocky9.ks")
	if code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}
	want := "../../pkg/kickstart/testdata/my-rocky9.ks:1: install has been removed from the RHEL9 kickstart syntax: delete the line"
	if !strings.HasPrefix(errOut, want) {
		t.Errorf("stderr = %q, want it to start with %q", errOut, want)
	}
	if strings.Contains(errOut, "yourpassword") {
		t.Error("the root password reached the output")
	}
}

func TestValidateStrictAndJSON(t *testing.T) {
	ks := writeFile(t, "dup.ks", "repo --name=a --baseurl=http://x/\nrepo --name=a --baseurl=http://y/\n")
	if code, _, _ := kiln(t, "", "ks", "validate", ks); code != 0 {
		t.Errorf("warnings alone: exit %d, want 0", code)
	}
	code, out, _ := kiln(t, "", "--json", "ks", "validate", "--strict", ks)
	if code != 3 {
		t.Errorf("--strict with a warning: exit %d, want 3", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a diagnostic and a result line, got %q", out)
	}
	var d, r map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &d); err != nil || d["severity"] != "warning" || d["line"] != float64(2) {
		t.Errorf("diagnostic = %s (%v)", lines[0], err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &r); err != nil || r["valid"] != false {
		t.Errorf("result = %s (%v)", lines[1], err)
	}
}

func TestValidateStdin(t *testing.T) {
	code, out, _ := kiln(t, "text\nlang C\n", "ks", "validate", "-")
	if code != 0 || !strings.Contains(out, "-: valid") {
		t.Errorf("exit %d, stdout %q", code, out)
	}
}

func TestRender(t *testing.T) {
	src := "text\r\nlang en_US.UTF-8\r\nurl --url=http://mirror.local/os/\r\nreboot\r\n"
	ks := writeFile(t, "r.ks", src)
	code, out, errOut := kiln(t, "", "ks", "render", ks)
	if code != 0 || out != src {
		t.Errorf("plain render: exit %d, %q (stderr %s)", code, out, errOut)
	}
	post := writeFile(t, "post.sh", "echo hello\n")
	code, out, _ = kiln(t, "", "ks", "render", "--poweroff", "--set-url", "http://mirror.local/=http://10.0.2.2:8080/", "--add-post", post, ks)
	want := "text\r\nlang en_US.UTF-8\r\nurl --url=http://10.0.2.2:8080/os/\r\npoweroff\r\n%post\necho hello\n%end\n"
	if code != 0 || out != want {
		t.Errorf("edited render: exit %d\n%q\nwant\n%q", code, out, want)
	}
	bad := writeFile(t, "bad.ks", "bogus\n")
	if code, out, _ := kiln(t, "", "ks", "render", bad); code != 3 || out != "" {
		t.Errorf("render of an invalid kickstart: exit %d, stdout %q", code, out)
	}
}

func TestRenderWithTDL(t *testing.T) {
	ks := writeFile(t, "base.ks", "text\nrootpw --lock\n%packages\n@core\n%end\n")
	code, out, errOut := kiln(t, "", "ks", "render", "--tdl", "../../pkg/tdl/testdata/full.tdl", ks)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"repo --name=custom --baseurl=http://mirror.example/custom/", "httpd\ncustom-package-1\n%end", "echo one", "base64 -d > /etc/motd"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "t0p-secret") {
		t.Error("the TDL's rootpw replaced the kickstart's rootpw --lock")
	}
}

func TestTDLValidate(t *testing.T) {
	if code, out, _ := kiln(t, "", "tdl", "validate", "../../pkg/tdl/testdata/rocky9.tdl"); code != 0 || !strings.Contains(out, "kickstart RHEL9") {
		t.Errorf("exit %d, %q", code, out)
	}
	bad := writeFile(t, "bad.tdl", "<template>\n<name>x</name>\n</template>\n")
	code, _, errOut := kiln(t, "", "tdl", "validate", bad)
	if code != 3 || !strings.Contains(errOut, "bad.tdl:1: /template: missing required element os") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestVMDryRun(t *testing.T) {
	code, out, errOut := kiln(t, "", "vm", "--dry-run", "--accel", "tcg", "--kernel", "/boot/vmlinuz", "--append", "console=ttyS0 inst.ks=hd:LABEL=A\\x20B:/ks.cfg", "--disk", "out.qcow2:qcow2", "--memory", "1024")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"qemu-system-x86_64 ", "-accel tcg", "-m 1024", "-kernel /boot/vmlinuz", `-append 'console=ttyS0 inst.ks=hd:LABEL=A\x20B:/ks.cfg'`, "format=qcow2,file=out.qcow2"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range [][]string{
		{"vm", "--firmware", "coreboot"},
		{"vm", "--accel", "hvf", "--dry-run"},
		{"vm", "--initrd", "x", "--dry-run"},
		{"vm", "stray"},
	} {
		if code, _, _ := kiln(t, "", bad...); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
}

// TestHelpOnce: each command's --help prints its usage once, and exits 0.
func TestHelpOnce(t *testing.T) {
	for _, args := range [][]string{{"build"}, {"serve"}, {"version"}, {"ks", "validate"}, {"ks", "render"}, {"tdl", "validate"}, {"iso"}, {"vm"}, {"cache"}, {"oz-install"}} {
		code, out, errOut := kiln(t, "", append(args, "--help")...)
		if n := strings.Count(out+errOut, "Usage"); code != 0 || n != 1 {
			t.Errorf("kiln %s --help: exit %d, %d usages:\n%s%s", strings.Join(args, " "), code, n, out, errOut)
		}
	}
}
