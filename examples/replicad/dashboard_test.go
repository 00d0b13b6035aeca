package main

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/openbrc/brc/internal/metrics"
)

// Every PromQL expression of the Grafana dashboard names only metrics the
// Recorder registers.
func TestDashboardMetrics(t *testing.T) {
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash)
	if len(exprs) < 10 {
		t.Fatalf("only %d expressions", len(exprs))
	}

	r := metrics.New()
	r.SetTargets([]string{"/dr"})
	r.LastCompleted("/dr", time.Now())
	fams, err := r.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, f := range fams {
		known[f.GetName()] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				known[f.GetName()+suf] = true
			}
		}
	}
	name := regexp.MustCompile(`\b` + metrics.Namespace + `_[a-zA-Z0-9_]+`)
	used := map[string]bool{}
	for _, e := range exprs {
		names := name.FindAllString(e, -1)
		if len(names) == 0 {
			t.Errorf("expression names no %s metric: %s", metrics.Namespace, e)
		}
		for _, n := range names {
			used[n] = true
			if !known[n] {
				t.Errorf("expression %q: %s is not a metric the Recorder registers", e, n)
			}
		}
	}
	for _, f := range fams {
		n := f.GetName()
		if !used[n] && !used[n+"_bucket"] && !used[n+"_sum"] && !strings.HasPrefix(n, "go_") {
			t.Logf("not on the dashboard: %s", n)
		}
	}
}
