package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/openbrc/brc/internal/config"
)

const confExample = "replicad.conf.example"

// TestConfExample: the example configuration loads and is fit for
// "replicad run".
func TestConfExample(t *testing.T) {
	cfg, err := config.Load(confExample)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckRun(); err != nil {
		t.Fatal(err)
	}
	if cfg.RPOReportDir != "" {
		if err := checkReportParams(cfg); err != nil {
			t.Fatal(err)
		}
	}
}

// disabledLine is a setting left commented out: "#key = value".
var disabledLine = regexp.MustCompile(`^#([a-z_]+) = (.+)$`)

// TestConfExampleAlternatives: every setting the example leaves commented
// out ("#key = value") is valid once uncommented. Each is parsed on its
// own, with a base that satisfies the rules tying keys together.
func TestConfExampleAlternatives(t *testing.T) {
	b, err := os.ReadFile(confExample)
	if err != nil {
		t.Fatal(err)
	}
	base := map[string]string{
		"targets":               "/srv/dr",
		"retention_versions":    "1",    // mode = retention
		"delete_removed_unsafe": "yes",  // delete_removed = yes
		"healthcheck_cmd":       "true", // promote_cmd, demote_cmd
	}
	n := 0
	for i, line := range strings.Split(string(b), "\n") {
		m := disabledLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n++
		var doc strings.Builder
		for k, v := range base {
			if k != m[1] {
				doc.WriteString(k + " = " + v + "\n")
			}
		}
		doc.WriteString(m[1] + " = " + m[2] + "\n")
		if _, err := config.Parse(strings.NewReader(doc.String()), confExample+":"+strconv.Itoa(i+1)); err != nil {
			t.Errorf("line %d %q, uncommented: %v", i+1, line, err)
		}
	}
	if n == 0 {
		t.Fatal("no commented-out setting found")
	}
}

// TestConfExampleComplete: every key config knows (the keys map of
// internal/config/config.go) appears in the example, set or commented out.
func TestConfExampleComplete(t *testing.T) {
	b, err := os.ReadFile(confExample)
	if err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "#")
		if k, _, ok := strings.Cut(line, " = "); ok && !strings.ContainsAny(k, " \t") {
			present[k] = true
		}
	}
	known := configKeys(t)
	if len(known) < 40 {
		t.Fatalf("found only %d keys in internal/config/config.go: has the keys map moved?", len(known))
	}
	for _, k := range known {
		if !present[k] {
			t.Errorf("key %s is missing from %s", k, confExample)
		}
	}
	for k := range present {
		if !slices.Contains(known, k) {
			t.Errorf("%s shows %s, which config does not know", confExample, k)
		}
	}
}

// configKeys returns the keys of the keys map in internal/config.
func configKeys(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../../internal/config/config.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "keys" || len(vs.Values) != 1 {
			return true
		}
		lit, ok := vs.Values[0].(*ast.CompositeLit)
		if !ok {
			return true
		}
		for _, e := range lit.Elts {
			kv, ok := e.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			if bl, ok := kv.Key.(*ast.BasicLit); ok && bl.Kind == token.STRING {
				if s, err := strconv.Unquote(bl.Value); err == nil {
					keys = append(keys, s)
				}
			}
		}
		return false
	})
	return keys
}
