package anaconda

import (
	"reflect"
	"testing"
)

func TestParseBootOptions(t *testing.T) {
	o := ParseBootOptions(`BOOT_IMAGE=/images/pxeboot/vmlinuz initrd=initrd.img inst.stage2=hd:LABEL=Rocky-9-5-x86_64-dvd inst.ks=hd:LABEL=Rocky-9-5-x86_64-dvd:/ks.cfg inst.text console=tty0 console=ttyS0 inst.proxy=http://10.0.2.100:3128 quiet`)
	want := BootOptions{KS: "hd:LABEL=Rocky-9-5-x86_64-dvd:/ks.cfg", Stage2: "hd:LABEL=Rocky-9-5-x86_64-dvd", Proxy: "http://10.0.2.100:3128", Text: true, Console: []string{"tty0", "ttyS0"}}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("got %+v\nwant %+v", o, want)
	}
	if o := ParseBootOptions("ks=file:/ks.cfg repo=cdrom inst.cmdline"); o.KS != "file:/ks.cfg" || o.Repo != "cdrom" || !o.Cmdline {
		t.Errorf("without the inst. prefix: %+v", o)
	}
}

func TestParseLocation(t *testing.T) {
	tests := []struct {
		in   string
		want Location
		err  bool
	}{
		{"http://10.0.2.2:8080/tok/ks.cfg", Location{Kind: "http", URL: "http://10.0.2.2:8080/tok/ks.cfg"}, false},
		{"https://mirror/ks.cfg", Location{Kind: "http", URL: "https://mirror/ks.cfg"}, false},
		{`hd:LABEL=Rocky\x209\x20DVD:/ks.cfg`, Location{Kind: "hd", Label: "Rocky 9 DVD", Path: "/ks.cfg"}, false},
		{"hd:LABEL=OEMDRV:/ks.cfg", Location{Kind: "hd", Label: "OEMDRV", Path: "/ks.cfg"}, false},
		{"hd:sdb1:/ks/my.ks", Location{Kind: "hd", Dev: "sdb1", Path: "/ks/my.ks"}, false},
		{"hd:/dev/vdb:/ks.cfg", Location{Kind: "hd", Dev: "vdb", Path: "/ks.cfg"}, false},
		{"hd:UUID=1234-ABCD:/ks.cfg", Location{Kind: "hd", UUID: "1234-ABCD", Path: "/ks.cfg"}, false},
		{"hd:LABEL=Rocky-9-5-x86_64-dvd", Location{Kind: "hd", Label: "Rocky-9-5-x86_64-dvd"}, false},
		{"cdrom:/ks.cfg", Location{Kind: "cdrom", Path: "/ks.cfg"}, false},
		{"file:/ks.cfg", Location{Kind: "file", Path: "/ks.cfg"}, false},
		{"nfs:server:/ks.cfg", Location{}, true},
		{`hd:LABEL=bad\xZZ:/ks.cfg`, Location{}, true},
		{"hd::/ks.cfg", Location{}, true},
	}
	for _, tt := range tests {
		got, err := ParseLocation(tt.in)
		if (err != nil) != tt.err || (!tt.err && got != tt.want) {
			t.Errorf("ParseLocation(%q) = %+v, %v; want %+v (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{`hd:LABEL=A\x20B:/ks.cfg`, "http://x/ks", "cdrom:/ks.cfg", "hd:sda1:/x", `hd:LABEL=\x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLocation(s)
		if err == nil && l.Kind == "" {
			t.Fatalf("%q parsed to an empty location", s)
		}
		ParseBootOptions(s)
	})
}
