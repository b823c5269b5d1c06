package ksserve

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The proxy benchmarks run kiln serve, nginx (as a proxy_cache in front
// of the same loopback upstream) and direct downloads from that upstream
// in one run, and report kiln's throughput as a ratio to each:
//
//	make bench-proxy        # cache hits, and a cold cache on loopback
//	make bench-proxy-link   # a cold cache with the upstream behind 1 Gbit/s
//
// Floors: cache hits at least 1.0x nginx's on RPM-sized objects and 0.8x
// on 8 KiB ones; a cold cache behind a 1 Gbit/s link at least 0.9x a
// direct download on RPM-sized objects. On loopback a cold cache is
// reported against nginx's own cold proxy_cache (a fresh query string per
// run is a fresh cache key): when the client, the proxy and the upstream
// share 2 cores, no caching proxy comes near a direct download.

type objectSet struct {
	name  string
	count int
	size  int
}

var benchSets = []objectSet{
	{"large", 8, 32 << 20}, // RPM-sized: 8 x 32 MiB
	{"small", 2000, 8 << 10},
}

type benchEnv struct {
	kiln     string // the kiln binary, built on first use
	dir      string
	upstream string // base URL
	nginx    string // base URL of nginx's proxy_cache
	client   *http.Client
}

func setupBench(b *testing.B) *benchEnv {
	b.Helper()
	nginxBin, err := exec.LookPath("nginx")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/nginx"); err != nil {
			b.Skip("nginx not installed")
		}
		nginxBin = "/usr/sbin/nginx"
	}
	dir := b.TempDir()
	root := filepath.Join(dir, "upstream")
	for _, set := range benchSets {
		d := filepath.Join(root, set.name)
		os.MkdirAll(d, 0o755)
		buf := make([]byte, set.size)
		for i := 0; i < set.count; i++ {
			for j := range buf {
				buf[j] = byte(i + j*7)
			}
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("pkg-%04d.rpm", i)), buf, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	// nginx plays both parts in its own processes: the static upstream
	// mirror, and the proxy_cache kiln is compared with.
	freePort := func() int {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	uport, nport := freePort(), freePort()
	upstream := fmt.Sprintf("http://127.0.0.1:%d", uport)
	user := ""
	if os.Getuid() == 0 {
		// As root, nginx's workers would drop to nobody, who cannot write
		// to this test's private directory.
		user = "user root;"
	}
	conf := fmt.Sprintf(`daemon off;
%[4]s
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy_temp;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  proxy_cache_path %[1]s/nginx-cache levels=1:2 keys_zone=kiln:10m max_size=10g inactive=1d use_temp_path=off;
  upstream up { server 127.0.0.1:%[2]d; keepalive 64; }
  server {
    listen 127.0.0.1:%[2]d;
    root %[5]s;
  }
  server {
    listen 127.0.0.1:%[3]d;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache kiln;
      proxy_cache_valid 200 1d;
      proxy_cache_lock on;
      proxy_buffering on;
    }
  }
}
`, dir, uport, nport, user, root)
	confPath := filepath.Join(dir, "nginx.conf")
	os.WriteFile(confPath, []byte(conf), 0o644)
	cmd := exec.Command(nginxBin, "-c", confPath, "-p", dir)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// SIGTERM, not SIGKILL: the master then stops its workers, which
	// SIGKILL would leave running.
	b.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	nginx := fmt.Sprintf("http://127.0.0.1:%d", nport)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	// Wait until nginx answers (it has no readiness signal but the socket).
	for i := 0; ; i++ {
		resp, err := client.Get(upstream + "/small/pkg-0000.rpm")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			break
		}
		if i > 200 {
			b.Fatalf("nginx did not start: %v", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return &benchEnv{dir: dir, upstream: upstream, nginx: nginx, client: client}
}

// fetchAll downloads every object of set from base with conc workers and
// returns the bytes read.
func (e *benchEnv) fetchAll(b *testing.B, base string, set objectSet, conc int) int64 {
	return e.fetchAllQuery(b, base, set, conc, "")
}

// fetchAllQuery is fetchAll with a query string on every URL; a new query
// is a new key to nginx's proxy_cache, so it makes nginx's cache cold.
func (e *benchEnv) fetchAllQuery(b *testing.B, base string, set objectSet, conc int, query string) int64 {
	var wg sync.WaitGroup
	next := make(chan int)
	var total int64
	var mu sync.Mutex
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n int64
			for i := range next {
				resp, err := e.client.Get(fmt.Sprintf("%s/%s/pkg-%04d.rpm%s", base, set.name, i, query))
				if err != nil {
					b.Error(err)
					continue
				}
				m, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || m != int64(set.size) {
					b.Errorf("%s: %d, %d bytes", resp.Request.URL, resp.StatusCode, m)
				}
				n += m
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	for i := 0; i < set.count; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return total
}

// kilnServer runs kiln's mirror proxy on cacheDir as nginx runs: in a
// process of its own (kiln serve), not in the benchmark's, whose client
// would otherwise share its scheduler and cores. It returns the proxy's
// base URL for the upstream and a function that stops it.
func (e *benchEnv) kilnServer(b *testing.B, cacheDir string) (string, func()) {
	ev, stop := e.kilnServe(b, "--mirror", "m="+e.upstream+"/", "--cache-dir", cacheDir)
	u := ev.Mirrors["m"]
	if u == "" {
		stop()
		b.Fatalf("kiln serve did not say where it serves")
	}
	return strings.TrimSuffix(u, "/"), stop
}

// servingEvent is what kiln serve --json says first.
type servingEvent struct {
	Event   string
	Mirrors map[string]string
	URLs    []map[string]string
}

// kilnServe runs kiln serve with args, built on first use, and returns
// its serving event and a function that stops it.
func (e *benchEnv) kilnServe(b *testing.B, args ...string) (servingEvent, func()) {
	if e.kiln == "" {
		e.kiln = filepath.Join(e.dir, "kiln")
		if out, err := exec.Command("go", "build", "-o", e.kiln, "../cmd/kiln").CombinedOutput(); err != nil {
			b.Fatalf("go build ../cmd/kiln: %v\n%s", err, out)
		}
		os.WriteFile(filepath.Join(e.dir, "bench.ks"), []byte("text\nrootpw --lock\nautopart\n"), 0o644)
	}
	cmd := exec.Command(e.kiln, append([]string{"--json", "serve", "--ks", filepath.Join(e.dir, "bench.ks")}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop := func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }
	var ev servingEvent
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == "serving" {
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	return ev, stop
}

func mbps(bytes int64, d time.Duration) float64 { return float64(bytes) / d.Seconds() / 1e6 }

func BenchmarkProxyHit(b *testing.B) {
	e := setupBench(b)
	kiln, stop := e.kilnServer(b, filepath.Join(e.dir, "kiln-cache"))
	defer stop()
	e.warmRuns(b, kiln, e.nginx, []int{1, 32})
}

// warmRuns fetches every set from kiln and from nginx, warm (both are
// read once first), in turns, and reports kiln's throughput as a ratio
// to nginx's.
func (e *benchEnv) warmRuns(b *testing.B, kiln, nginx string, concs []int) {
	for _, set := range benchSets {
		for _, conc := range concs {
			b.Run(fmt.Sprintf("%s/c%d", set.name, conc), func(b *testing.B) {
				e.fetchAll(b, kiln, set, 4)
				e.fetchAll(b, nginx, set, 4)
				var kd, nd time.Duration
				var kb, nb int64
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					start := time.Now()
					kb += e.fetchAll(b, kiln, set, conc)
					kd += time.Since(start)
					start = time.Now()
					nb += e.fetchAll(b, nginx, set, conc)
					nd += time.Since(start)
				}
				k, n := mbps(kb, kd), mbps(nb, nd)
				b.ReportMetric(k, "kiln-MB/s")
				b.ReportMetric(n, "nginx-MB/s")
				b.ReportMetric(k/n, "kiln/nginx")
			})
		}
	}
}

func BenchmarkProxyCold(b *testing.B) {
	e := setupBench(b)
	e.coldRuns(b)
}

// BenchmarkProxyColdLink is BenchmarkProxyCold with the upstream behind a
// link of KILN_BENCH_LINK (say 1gbit), as a mirror across a LAN is: HTB
// on the loopback shapes what the upstream sends, and nothing else. It
// changes the loopback, so it runs only in a network namespace of its
// own, where it is root:
//
//	make bench-proxy-link
func BenchmarkProxyColdLink(b *testing.B) {
	rate := os.Getenv("KILN_BENCH_LINK")
	if rate == "" {
		b.Skip("KILN_BENCH_LINK is not set: run make bench-proxy-link")
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		b.Fatalf("ip link set lo up: %v: %s", err, out)
	}
	e := setupBench(b)
	u, _ := url.Parse(e.upstream)
	for _, args := range [][]string{
		{"qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10"},
		{"class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", "100gbit"},
		{"class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", rate},
		{"filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match", "ip", "sport", u.Port(), "0xffff", "flowid", "1:20"},
	} {
		if out, err := exec.Command("tc", args...).CombinedOutput(); err != nil {
			b.Fatalf("tc %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	e.coldRuns(b)
}

// coldRuns fetches each set through a kiln with an empty cache, directly
// from the upstream, and through nginx with a cold cache.
func (e *benchEnv) coldRuns(b *testing.B) {
	for _, set := range benchSets {
		for _, conc := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/c%d", set.name, conc), func(b *testing.B) {
				var kd, dd, nd time.Duration
				var kb, db, nb int64
				for i := 0; i < b.N; i++ {
					kiln, stop := e.kilnServer(b, b.TempDir())
					start := time.Now()
					kb += e.fetchAll(b, kiln, set, conc)
					kd += time.Since(start)
					stop()
					start = time.Now()
					db += e.fetchAll(b, e.upstream, set, conc)
					dd += time.Since(start)
					start = time.Now()
					// The benchmark function runs more than once (b.N = 1, then
					// 3): the time makes each run's key new to nginx.
					nb += e.fetchAllQuery(b, e.nginx, set, conc, fmt.Sprintf("?cold=%d", time.Now().UnixNano()))
					nd += time.Since(start)
				}
				k, d, n := mbps(kb, kd), mbps(db, dd), mbps(nb, nd)
				b.ReportMetric(k, "kiln-MB/s")
				b.ReportMetric(d, "direct-MB/s")
				b.ReportMetric(n, "nginx-MB/s")
				b.ReportMetric(k/d, "kiln/direct")
				b.ReportMetric(k/n, "kiln/nginx")
			})
		}
	}
}
