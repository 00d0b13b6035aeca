package listing

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/openbrc/brc/bacularec"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const fixtures = "../../bacularec/testdata"

func list(t *testing.T, asJSON bool, vols ...string) ([]byte, Summary) {
	t.Helper()
	var paths []string
	for _, v := range vols {
		paths = append(paths, filepath.Join(fixtures, v))
	}
	var buf bytes.Buffer
	s, err := Write(&buf, bacularec.NewFiles(bacularec.NewMultiReader(bacularec.FileVolumes(paths...))), asJSON)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), s
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, got)
	}
}

func TestTextListing(t *testing.T) {
	out, s := list(t, false, "bacula-9.6.7-plain-md5.vol")
	golden(t, "plain-md5.txt", out)
	if s.Volumes != 1 || s.Jobs != 1 || s.Files != 54 || s.Notices != 0 {
		t.Fatalf("summary %+v", s)
	}
	out, _ = list(t, false, "bacula-9.6.7-accurate-2-incr.vol")
	if !bytes.Contains(out, []byte("-*DELETED-")) {
		t.Fatalf("deleted files not marked:\n%s", out)
	}
}

// The JSON listing has one object per line: the volume labels, one "job"
// and one "job-end" per job, and one "file" per attributes record, with the
// EOS fields on "job-end".
func TestJSONListing(t *testing.T) {
	out, _ := list(t, true, "bacula-9.6.7-span.1.vol", "bacula-9.6.7-span.2.vol")
	golden(t, "span.jsonl", out)
	kinds := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	var end Job
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		kinds[m["kind"].(string)]++
		if m["kind"] == "job-end" {
			if err := json.Unmarshal(sc.Bytes(), &end); err != nil {
				t.Fatal(err)
			}
		}
	}
	if kinds["volume"] != 2 || kinds["job"] != 1 || kinds["job-end"] != 1 || kinds["file"] != 54 || len(kinds) != 4 {
		t.Fatalf("kinds %v", kinds)
	}
	if end.Status != "T" || end.JobFiles == nil || *end.JobFiles != 54 || end.Ended == nil || !*end.Ended {
		t.Fatalf("job-end %+v", end)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/a b/c.txt":     "/a b/c.txt",
		"/new\nline":     `/new\nline`,
		"/latin1-\xe9":   `/latin1-\xe9`,
		`/it's "quoted"`: `/it's "quoted"`,
		"/ütf-8 日本語":     "/ütf-8 日本語",
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %q, want %q", in, got, want)
		}
	}
}
