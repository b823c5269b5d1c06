package ksserve

import (
	"fmt"
	"strings"
)

// DHCP is what a site's DHCP server must hand out for machines to boot
// from this server: kiln runs no DHCP of its own, since a second DHCP
// server on a network breaks it.
type DHCP struct {
	// Base is this server's URL as the machines reach it.
	Base string
	// TFTP is the TFTP server's IPv4 address (kiln serve --tftp), for
	// PXE ROMs that fetch their first file by nothing else; "" when
	// there is none.
	TFTP string
}

// The three ways a machine asks (RFC 4578 client architecture, option
// 93): BIOS PXE (0), UEFI x86-64 PXE (7, and 9 from some firmware), and
// UEFI HTTP boot (16, vendor class "HTTPClient"). Each first chainloads
// iPXE, which asks again with user class "iPXE" and gets the script.

// Dnsmasq is the lines for dnsmasq.conf.
func (s *Server) Dnsmasq(d DHCP) string {
	var b strings.Builder
	b.WriteString("# kiln: network install. iPXE, however it started, gets the boot script.\n")
	b.WriteString("dhcp-userclass=set:ipxe,iPXE\n")
	b.WriteString("dhcp-vendorclass=set:bios,PXEClient:Arch:00000\n")
	b.WriteString("dhcp-vendorclass=set:efi64,PXEClient:Arch:00007\n")
	b.WriteString("dhcp-vendorclass=set:efi64,PXEClient:Arch:00009\n")
	b.WriteString("dhcp-vendorclass=set:efihttp,HTTPClient:Arch:00016\n")
	fmt.Fprintf(&b, "dhcp-boot=tag:ipxe,%s\n", d.Base+s.BootPath("boot.ipxe"))
	if d.TFTP != "" {
		fmt.Fprintf(&b, "# BIOS and UEFI PXE: iPXE by TFTP.\n")
		fmt.Fprintf(&b, "dhcp-boot=tag:!ipxe,tag:bios,%s,,%s\n", s.tftpName("undionly.kpxe"), d.TFTP)
		fmt.Fprintf(&b, "dhcp-boot=tag:!ipxe,tag:efi64,%s,,%s\n", s.tftpName("ipxe.efi"), d.TFTP)
	}
	b.WriteString("# UEFI HTTP boot: iPXE by HTTP.\n")
	b.WriteString("dhcp-option-force=tag:efihttp,60,HTTPClient\n")
	fmt.Fprintf(&b, "dhcp-boot=tag:!ipxe,tag:efihttp,%s\n", d.Base+s.BootPath("ipxe.efi"))
	return b.String()
}

// ISCDhcpd is the lines for ISC dhcpd.conf: global at its top level
// (dhcpd refuses an option definition anywhere else), and scoped at the
// top level too or in the subnet the machines boot on.
func (s *Server) ISCDhcpd(d DHCP) (global, scoped string) {
	global = "# kiln: the client architecture (RFC 4578).\noption client-arch code 93 = unsigned integer 16;\n"
	var b strings.Builder
	b.WriteString("# kiln: network install. iPXE, however it started, gets the boot script.\n")
	b.WriteString("if exists user-class and option user-class = \"iPXE\" {\n")
	fmt.Fprintf(&b, "  filename \"%s\";\n", d.Base+s.BootPath("boot.ipxe"))
	b.WriteString("} elsif substring(option vendor-class-identifier, 0, 10) = \"HTTPClient\" {\n")
	b.WriteString("  option vendor-class-identifier \"HTTPClient\";\n")
	fmt.Fprintf(&b, "  filename \"%s\";\n", d.Base+s.BootPath("ipxe.efi"))
	if d.TFTP != "" {
		b.WriteString("} elsif option client-arch = 7 or option client-arch = 9 {\n")
		fmt.Fprintf(&b, "  next-server %s;\n  filename \"%s\";\n", d.TFTP, s.tftpName("ipxe.efi"))
		b.WriteString("} else {\n")
		fmt.Fprintf(&b, "  next-server %s;\n  filename \"%s\";\n", d.TFTP, s.tftpName("undionly.kpxe"))
	}
	b.WriteString("}\n")
	return global, b.String()
}

// Kea is the "client-classes" member of Kea's Dhcp4 configuration.
// Classes are tested in order, so iPXE's comes first.
func (s *Server) Kea(d DHCP) string {
	var b strings.Builder
	b.WriteString("\"client-classes\": [\n")
	fmt.Fprintf(&b, "  { \"name\": \"kiln-ipxe\", \"test\": \"substring(option[77].hex,0,4) == 'iPXE'\", \"boot-file-name\": \"%s\" },\n", d.Base+s.BootPath("boot.ipxe"))
	fmt.Fprintf(&b, "  { \"name\": \"kiln-efi-http\", \"test\": \"not member('kiln-ipxe') and substring(option[60].hex,0,10) == 'HTTPClient'\",\n")
	fmt.Fprintf(&b, "    \"boot-file-name\": \"%s\",\n", d.Base+s.BootPath("ipxe.efi"))
	b.WriteString("    \"option-data\": [ { \"name\": \"vendor-class-identifier\", \"data\": \"HTTPClient\" } ] }")
	if d.TFTP != "" {
		b.WriteString(",\n")
		fmt.Fprintf(&b, "  { \"name\": \"kiln-efi-pxe\", \"test\": \"not member('kiln-ipxe') and (option[93].hex == 0x0007 or option[93].hex == 0x0009)\",\n")
		fmt.Fprintf(&b, "    \"next-server\": \"%s\", \"boot-file-name\": \"%s\" },\n", d.TFTP, s.tftpName("ipxe.efi"))
		fmt.Fprintf(&b, "  { \"name\": \"kiln-bios-pxe\", \"test\": \"not member('kiln-ipxe') and option[93].hex == 0x0000\",\n")
		fmt.Fprintf(&b, "    \"next-server\": \"%s\", \"boot-file-name\": \"%s\" }", d.TFTP, s.tftpName("undionly.kpxe"))
	}
	b.WriteString("\n]\n")
	return b.String()
}

// tftpName is a boot file's name over TFTP: its HTTP path without the
// leading slash, token and all.
func (s *Server) tftpName(name string) string { return strings.TrimPrefix(s.BootPath(name), "/") }

// TFTPFile maps a TFTP file name to a boot file's name: "TOKEN/boot/NAME",
// with or without a leading slash. Without the token there is nothing.
func (s *Server) TFTPFile(requested string) (string, bool) {
	name, ok := strings.CutPrefix("/"+strings.TrimPrefix(requested, "/"), s.prefix+"boot/")
	if !ok || name == "" || strings.ContainsAny(name, "/\\") {
		return "", false
	}
	return name, true
}

// TFTPNames lists the boot files by their TFTP names.
func (s *Server) TFTPNames() []string {
	var out []string
	for _, n := range s.BootFiles() {
		out = append(out, s.tftpName(n))
	}
	return out
}
