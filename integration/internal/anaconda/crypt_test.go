package anaconda

import (
	"os/exec"
	"strings"
	"testing"
)

func TestSHA512Crypt(t *testing.T) {
	// The test vectors of the SHA-crypt specification.
	for _, v := range []struct{ pw, salt, want string }{
		{"Hello world!", "saltstring", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
		{"This is just a test", "roundstoolow", ""},
	} {
		if v.want == "" {
			continue
		}
		if got := SHA512Crypt(v.pw, v.salt); got != v.want {
			t.Errorf("SHA512Crypt(%q, %q) = %s, want %s", v.pw, v.salt, got, v.want)
		}
	}
	// openssl agrees, when it is here.
	if _, err := exec.LookPath("openssl"); err == nil {
		out, err := exec.Command("openssl", "passwd", "-6", "-salt", "kilnsalt", "yourpassword").Output()
		if err == nil && strings.TrimSpace(string(out)) != SHA512Crypt("yourpassword", "kilnsalt") {
			t.Errorf("openssl says %s, kiln %s", out, SHA512Crypt("yourpassword", "kilnsalt"))
		}
	}
}
