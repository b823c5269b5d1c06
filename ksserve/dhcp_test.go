package ksserve

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// TestDHCPSnippets has each DHCP server check the lines kiln prints for
// it, embedded in a minimal configuration: dnsmasq --test, dhcpd -t and
// kea-dhcp4 -t are the oracles of their own syntax.
func TestDHCPSnippets(t *testing.T) {
	_, image := treeISO(t)
	srv, _ := isoServer(t, image)
	for _, d := range []DHCP{{Base: "http://192.0.2.10:8080", TFTP: "192.0.2.10"}, {Base: "http://192.0.2.10:8080"}} {
		name := "with TFTP"
		if d.TFTP == "" {
			name = "HTTP only"
		}
		iscGlobal, iscScoped := srv.ISCDhcpd(d)
		t.Run(name, func(t *testing.T) {
			for _, c := range []struct {
				tool string
				conf string
				argv func(p string) []string
			}{
				{"dnsmasq", "port=0\ndhcp-range=192.0.2.100,192.0.2.200,12h\n" + srv.Dnsmasq(d),
					func(p string) []string { return []string{"dnsmasq", "--test", "--conf-file=" + p} }},
				{"dhcpd", "ddns-update-style none;\n" + iscGlobal + "subnet 192.0.2.0 netmask 255.255.255.0 {\n  range 192.0.2.100 192.0.2.200;\n" + iscScoped + "}\n",
					func(p string) []string { return []string{"dhcpd", "-4", "-t", "-cf", p} }},
				{"kea-dhcp4", "{ \"Dhcp4\": { \"subnet4\": [ { \"subnet\": \"192.0.2.0/24\", \"pools\": [ { \"pool\": \"192.0.2.100 - 192.0.2.200\" } ] } ],\n" + srv.Kea(d) + "} }\n",
					func(p string) []string { return []string{"kea-dhcp4", "-t", p} }},
			} {
				bin := testutil.RequireTool(t, c.tool)
				p := filepath.Join(t.TempDir(), c.tool+".conf")
				os.WriteFile(p, []byte(c.conf), 0o644)
				argv := c.argv(p)
				argv[0] = bin
				out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
				if err != nil {
					t.Errorf("%s rejects its lines: %v\n%s\n%s", c.tool, err, out, c.conf)
				}
				for _, want := range []string{d.Base + srv.BootPath("boot.ipxe"), d.Base + srv.BootPath("ipxe.efi")} {
					if !strings.Contains(c.conf, want) {
						t.Errorf("%s: no %s", c.tool, want)
					}
				}
				if d.TFTP != "" && !strings.Contains(c.conf, srv.tftpName("undionly.kpxe")) {
					t.Errorf("%s: no BIOS PXE line", c.tool)
				}
			}
		})
	}
}

func TestTFTPFile(t *testing.T) {
	s := &Server{prefix: "/tok/"}
	for in, want := range map[string]string{"tok/boot/undionly.kpxe": "undionly.kpxe", "/tok/boot/ipxe.efi": "ipxe.efi",
		"tok/boot/": "", "other/boot/ipxe.efi": "", "tok/boot/../ks.cfg": "", "tok/ks.cfg": "", "tok/boot/a\\b": ""} {
		got, ok := s.TFTPFile(in)
		if got != want || ok != (want != "") {
			t.Errorf("%q: %q %v, want %q", in, got, ok, want)
		}
	}
}
