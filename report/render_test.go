package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

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
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, got)
	}
}

func fixtureReport(t *testing.T) *Report {
	t.Helper()
	r, err := Compute(fixture(), fixedNow, DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestGoldenJSON(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, fixtureReport(t)); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.json", b.Bytes())
}

func TestGoldenMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := WriteMarkdown(&b, fixtureReport(t)); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.md", b.Bytes())
	checkTables(t, b.String())
}

// An empty catalog still renders, with unknown verdicts.
func TestGoldenEmpty(t *testing.T) {
	r, err := Compute(MemSource{}, fixedNow, DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	var j, m bytes.Buffer
	if err := WriteJSON(&j, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteMarkdown(&m, r); err != nil {
		t.Fatal(err)
	}
	golden(t, "empty.json", j.Bytes())
	golden(t, "empty.md", m.Bytes())
	checkTables(t, m.String())
}

func TestJSONRoundTrip(t *testing.T) {
	for _, r := range []*Report{fixtureReport(t), mustCompute(t, MemSource{}, DefaultParams())} {
		var b bytes.Buffer
		if err := WriteJSON(&b, r); err != nil {
			t.Fatal(err)
		}
		var back Report
		dec := json.NewDecoder(&b)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&back, r) {
			t.Errorf("round trip differs:\n got %+v\nwant %+v", back, *r)
		}
	}
}

// The JSON shape promised by the package comment: snake_case names, null
// for unknown, [] for none, UTC times.
func TestJSONShape(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, fixtureReport(t)); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["schema"] != "openbrc.report/v1" || m["generated_at"] != "2026-03-01T12:00:00Z" {
		t.Errorf("schema %v, generated_at %v", m["schema"], m["generated_at"])
	}
	targets := m["targets"].([]any)
	byName := map[string]map[string]any{}
	for _, x := range targets {
		o := x.(map[string]any)
		byName[o["name"].(string)] = o
	}
	if v, ok := byName["gamma"]["rto_estimate_secs"]; !ok || v != nil {
		t.Errorf("unknown RTO is %v, want null", v)
	}
	if v, ok := byName["delta"]["rpo"]; !ok || v != nil {
		t.Errorf("empty target rpo is %v, want null", v)
	}
	if v := byName["delta"]["last_success"]; v != nil {
		t.Errorf("never is %v, want null", v)
	}
	var walk func(string, any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k != strings.ToLower(k) || strings.ContainsAny(k, " -") {
					if !strings.HasSuffix(where, ".by_status") {
						t.Errorf("key %q at %s is not snake_case", k, where)
					}
				}
				walk(where+"."+k, x)
			}
		case []any:
			for _, x := range v {
				walk(where+"[]", x)
			}
		}
	}
	walk("", m)
}

func TestWriteErrors(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, nil); !errors.Is(err, ErrNilReport) {
		t.Errorf("WriteJSON(nil) = %v", err)
	}
	if err := WriteMarkdown(&b, nil); !errors.Is(err, ErrNilReport) {
		t.Errorf("WriteMarkdown(nil) = %v", err)
	}
	if err := WriteJSON(&b, &Report{Schema: "openbrc.report/v9"}); !errors.Is(err, ErrSchema) {
		t.Errorf("other schema: %v", err)
	}
	b.Reset()
	if err := WriteJSON(&b, &Report{}); err != nil || !strings.Contains(b.String(), `"schema": "openbrc.report/v1"`) {
		t.Errorf("empty schema: %v\n%s", err, b.String())
	}
	werr := errors.New("disk full")
	if err := WriteMarkdown(failWriter{werr}, fixtureReport(t)); !errors.Is(err, werr) {
		t.Errorf("write error: %v", err)
	}
	if err := WriteJSON(failWriter{werr}, fixtureReport(t)); !errors.Is(err, werr) {
		t.Errorf("write error: %v", err)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestMarkdownText(t *testing.T) {
	for in, want := range map[string]string{
		"plain":              "plain",
		"a|b":                `a\|b`,
		`a\|b`:               `a\\\|b`,
		"my_file_name":       "my_file_name",
		"_x_":                `\_x\_`,
		"*bold* `c` ~s~":     `\*bold\* \` + "`" + `c\` + "`" + ` \~s\~`,
		"[l](u) <b> &amp;":   `\[l\](u) \<b> \&amp;`,
		"one\ntwo\r\nthree":  "one<br>two<br>three",
		"tab\there\x00":      "tab here\uFFFD",
		"bad\xffutf8":        "bad\uFFFDutf8",
		"# not a heading":    "# not a heading",
		"日本_語":               `日本\_語`,
		"trailing_":          `trailing\_`,
		"/srv/a_b/c_1.txt":   "/srv/a_b/c_1.txt",
		"x\\y":               `x\\y`,
		"":                   "",
		"pipe at end|":       `pipe at end\|`,
		"|":                  `\|`,
		"lone \r":            "lone <br>",
		"100% of (files)!":   "100% of (files)!",
		"a>b":                "a>b",
		"![img](x)":          `!\[img\](x)`,
		"http://example.com": "http://example.com",
	} {
		if got := mdText(in); got != want {
			t.Errorf("mdText(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"/a|b":       `/a\|b`,
		"/a\nb":      `"/a\\nb"`,
		"/a\xffb|c":  `"/a\\xffb\|c"`,
		"/tab\there": `"/tab\\there"`,
		"/ok_path":   "/ok_path",
	} {
		if got := mdPath(in); got != want {
			t.Errorf("mdPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// A path or error with pipes and newlines must not add cells or rows.
func TestMarkdownTablesHold(t *testing.T) {
	src := MemSource{{
		Info: TargetInfo{Name: "t|x", Root: "/r|\n", State: "odd|state\n", LastError: "a|b\nc\\|d"},
		Files: []FileRecord{
			{Path: `/p\|q`, Size: 1, Replicated: ago(100 * 24 * time.Hour)},
			{Path: "/p|q\n|r|", Size: 1, Replicated: ago(99 * 24 * time.Hour)},
			{Path: "|", Size: 1},
		},
		Jobs: []JobRecord{{JobID: 1, Name: "j|\n", Level: "|", Status: "\\|", Start: ago(time.Hour)}},
	}}
	r := mustCompute(t, src, DefaultParams())
	var b bytes.Buffer
	if err := WriteMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	checkTables(t, b.String())
	for _, want := range []string{`| /p\\\|q |`, `| "/p\|q\\n\|r\|" |`, `| \| |`, `a\|b<br>c\\\|d`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %s in\n%s", want, b.String())
		}
	}
}

// checkTables splits every table row of md into cells the way GFM does (a
// backslash escapes the next character, an unescaped pipe separates
// cells) and checks each row has as many cells as its table's header.
func checkTables(t *testing.T, md string) {
	t.Helper()
	want := -1
	for i, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "|") {
			want = -1
			continue
		}
		n := cells(line)
		if want < 0 {
			want = n
			continue
		}
		if n != want {
			t.Errorf("line %d has %d cells, its table %d: %s", i+1, n, want, line)
		}
	}
}

func cells(line string) int {
	n := 0
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case '|':
			n++
		}
	}
	return n - 1
}
