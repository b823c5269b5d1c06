package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const cacheUsage = `Usage:
  kiln cache [--cache-dir DIR]                 report the cache's size (mirror objects and downloaded ISOs)
  kiln cache clean [--older-than DUR] [--max-size SIZE] [--cache-dir DIR]

clean removes objects unused for longer than --older-than, then the least
recently used ones until the cache fits --max-size. With neither, it
empties the cache.

Examples:
  kiln cache
  kiln cache clean --older-than 720h --max-size 20G`

func runCache(ctx context.Context, e *env, args []string) error {
	clean := len(args) > 0 && args[0] == "clean"
	if clean {
		args = args[1:]
	}
	fs := flagSet(e, "cache", cacheUsage)
	dir := fs.String("cache-dir", "", "the cache of mirror objects and ISOs (default ~/.cache/kiln/mirror)")
	olderThan := fs.Duration("older-than", 0, "with clean: remove objects unused this long")
	maxSize := fs.String("max-size", "", "with clean: shrink the cache to this size (e.g. 20G)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("cache: unexpected argument %q", fs.Arg(0))
	}
	c, _, err := openCache(*dir, "")
	if err != nil {
		return err
	}
	if clean {
		before := time.Now().Add(time.Minute) // everything
		limit := int64(-1)
		if *olderThan > 0 {
			before = time.Now().Add(-*olderThan)
		}
		if *maxSize != "" {
			if limit, err = parseSize(*maxSize, 1); err != nil {
				return usagef("--max-size: %v", err)
			}
			if *olderThan == 0 {
				before = time.Time{}
			}
		}
		freed, err := c.Prune(before, limit)
		if err != nil {
			return err
		}
		e.log.Info("cache cleaned", "freed_bytes", freed)
	}
	size, n, err := c.Size()
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, map[string]any{"event": "cache", "bytes": size, "objects": n})
	}
	fmt.Fprintf(e.stdout, "%d objects, %s\n", n, humanBytes(size))
	return nil
}

// parseSize reads "20G", "512M", "1T", or a plain count of unit bytes.
func parseSize(s string, unit int64) (int64, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	mult := unit
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if t, ok := strings.CutSuffix(strings.TrimSuffix(strings.TrimSuffix(s, "B"), "I"), u.suffix); ok {
			s, mult = t, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 20G)", s)
	}
	return n * mult, nil
}

func humanBytes(n int64) string {
	f := float64(n)
	for _, u := range []string{"B", "KiB", "MiB", "GiB", "TiB"} {
		if f < 1024 || u == "TiB" {
			if u == "B" {
				return fmt.Sprintf("%d B", n)
			}
			return fmt.Sprintf("%.1f %s", f, u)
		}
		f /= 1024
	}
	return ""
}
