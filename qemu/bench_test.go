package qemu

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkOverhead boots the same test init to poweroff under a bare
// qemu-system-x86_64 and under kiln's supervisor, alternately, and reports
// the time kiln adds. The bare run uses Config.Repro's command line, which
// is the same VM with the logs going to a file and the terminal.
func BenchmarkOverhead(b *testing.B) {
	cfg := benchConfig(b)
	var bare, kiln time.Duration
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		cfg.RunDir = dir
		argv, err := cfg.cmdline(true)
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("bare QEMU: %v\n%s", err, out)
		}
		bare += time.Since(start)

		start = time.Now()
		res, err := Run(context.Background(), cfg, RunOptions{TempDir: dir})
		if err != nil {
			b.Fatalf("kiln: %v", err)
		}
		kiln += time.Since(start)
		_ = res
	}
	n := float64(b.N)
	b.ReportMetric(bare.Seconds()/n, "bare-s/op")
	b.ReportMetric(kiln.Seconds()/n, "kiln-s/op")
	b.ReportMetric(float64((kiln-bare).Milliseconds())/n, "overhead-ms/op")
	b.ReportMetric(kiln.Seconds()/bare.Seconds(), "kiln/bare")
}

func benchConfig(b *testing.B) *Config {
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		b.Skip("qemu-system-x86_64 not installed")
	}
	k, i := benchGuest(b)
	disk := filepath.Join(b.TempDir(), "disk.raw")
	f, _ := os.Create(disk)
	f.Truncate(16 << 20)
	f.Close()
	c, err := New(WithBinary(bin), WithMemory(512), WithCPUs(1), WithAccel("tcg"),
		WithKernel(k, i, "console=ttyS0 panic=-1 quiet kiln.test=ok"),
		WithDisk(Disk{Path: disk, Format: "raw", Unsafe: true}))
	if err != nil {
		b.Fatal(err)
	}
	return c
}
