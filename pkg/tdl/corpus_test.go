package tdl

import (
	"bufio"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// golden is the part of Oz's parse (corpus/tdl/golden/*.json) kiln compares.
type golden struct {
	OK            bool            `json:"ok"`
	Name          string          `json:"name"`
	Description   *string         `json:"description"`
	DiskSizeBytes json.RawMessage `json:"disk_size_bytes"`
	OS            struct {
		Name, Version, Arch string
		Rootpw              *string
	} `json:"os"`
	Install struct {
		Type, URL, ISO string
	} `json:"install"`
	Packages []struct {
		Name string `json:"name"`
	} `json:"packages"`
	Repositories []struct {
		Name      string `json:"name"`
		URL       string `json:"url"`
		Persisted bool   `json:"persisted"`
	} `json:"repositories"`
	Commands []struct {
		Content string `json:"content"`
	} `json:"commands"`
}

// TestCorpus checks kiln against what Oz's test suite expects of each TDL.
// It runs only when KILN_TDL_CORPUS names the folder holding
// EXPECTATIONS.tsv, tests/ and golden/.
// deliberate are the templates where kiln differs from Oz on purpose
// (docs/kickstart-compat.md).
var deliberate = map[string]string{
	"test-62-repository-localhost.tdl": "a repository on localhost is served to the guest through kiln's proxy",
}

func TestCorpus(t *testing.T) {
	dir := os.Getenv("KILN_TDL_CORPUS")
	if dir == "" {
		t.Skip("KILN_TDL_CORPUS is not set; this differential test is opt-in")
	}
	f, err := os.Open(filepath.Join(dir, "EXPECTATIONS.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	n, agree := 0, 0
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		file, want := cols[0], cols[2]
		n++
		tpl, err := ParseFile(filepath.Join(dir, file))
		got := "pass"
		if err != nil {
			got = "raise"
		}
		if why, ok := deliberate[filepath.Base(file)]; ok && got != want {
			t.Logf("%s: Oz says %s, kiln %s, on purpose: %s", file, want, got, why)
			n--
			continue
		}
		if got != want {
			t.Errorf("%s: Oz says %s, kiln %s (%v)", file, want, got, err)
			continue
		}
		agree++
		if err != nil {
			t.Logf("%s: %v", file, err)
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, "golden", filepath.Base(file)+".json"))
		if err != nil {
			continue
		}
		var g golden
		if err := json.Unmarshal(data, &g); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if g.Name != tpl.Name || g.OS.Name != tpl.OS.Name || g.OS.Version != tpl.OS.Version || g.OS.Arch != tpl.OS.Arch {
			t.Errorf("%s: name/os differ: %+v vs %+v", file, g, tpl.OS)
		}
		if g.Description != nil && *g.Description != tpl.Description {
			t.Errorf("%s: description %q vs %q", file, *g.Description, tpl.Description)
		}
		if g.Install.Type != tpl.Install.Type || g.Install.URL != tpl.Install.URL || g.Install.ISO != tpl.Install.ISO {
			t.Errorf("%s: install %+v vs %+v", file, g.Install, tpl.Install)
		}
		if s := string(g.DiskSizeBytes); s != "null" && s != "" {
			want, _ := new(big.Int).SetString(s, 10)
			if want == nil || want.Cmp(tpl.DiskSize) != 0 {
				t.Errorf("%s: disk size %s vs %v", file, s, tpl.DiskSize)
			}
		}
		if len(g.Packages) != len(tpl.Packages) || len(g.Repositories) != len(tpl.Repositories) || len(g.Commands) != len(tpl.Commands) {
			t.Errorf("%s: counts differ", file)
			continue
		}
		for i, r := range g.Repositories {
			if r.Name != tpl.Repositories[i].Name || r.URL != tpl.Repositories[i].URL || r.Persisted != tpl.Repositories[i].Persisted {
				t.Errorf("%s: repository %d: %+v vs %+v", file, i, r, tpl.Repositories[i])
			}
		}
		for i, c := range g.Commands {
			if tpl.Commands[i].Type != "url" && c.Content != tpl.Commands[i].Content {
				t.Errorf("%s: command %d: %q vs %q", file, i, c.Content, tpl.Commands[i].Content)
			}
		}
	}
	t.Logf("%d of %d TDLs behave as Oz expects", agree, n)
}
