package report_test

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"strings"
	"time"

	"github.com/openbrc/brc/report"
)

// Compute a report from an in-memory catalog and render it for programs
// and for people.
func Example() {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	src := report.MemSource{{
		Info: report.TargetInfo{Name: "dr1", Root: "/srv/dr1", Bandwidth: 100 << 20, State: report.StateOK},
		Files: []report.FileRecord{
			{Path: "/etc/hosts", Size: 200, Replicated: now.Add(-time.Hour), JobID: 12},
			{Path: "/var/db/main.db", Size: 1 << 30, Replicated: now.Add(-6 * time.Hour), JobID: 11},
		},
	}}
	p := report.DefaultParams()
	p.MaxListed = 10
	r, err := report.Compute(src, now, p)
	if err != nil {
		log.Fatal(err)
	}
	t := r.Targets[0]
	fmt.Printf("overall %s: RPO %s (max %d s), RTO %s (%d s)\n",
		r.Verdict, t.RPOVerdict, t.RPO.MaxSecs, t.RTOVerdict, *t.RTOEstimateSecs)
	for _, b := range r.RPOBreaches.Worst {
		fmt.Printf("breach: %s%s, %d s old, JobId %d\n", b.Target, b.Path, *b.AgeSecs, b.JobID)
	}
	if err := report.WriteJSON(io.Discard, r); err != nil { // for programs
		log.Fatal(err)
	}
	var md bytes.Buffer // for auditors; here only its summary table
	if err := report.WriteMarkdown(&md, r); err != nil {
		log.Fatal(err)
	}
	_, summary, _ := strings.Cut(md.String(), "## Summary\n\n")
	summary, _, _ = strings.Cut(summary, "\n\n")
	fmt.Println(summary)
	// Output:
	// overall fail: RPO fail (max 21600 s), RTO pass (311 s)
	// breach: dr1/var/db/main.db, 21600 s old, JobId 11
	// | Target | Files | Bytes | RPO max | RPO p95 | RPO median | RTO estimate | RPO | RTO | Verdict |
	// | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |
	// | dr1 | 2 | 1.0 GiB | 6h 0m 0s | 6h 0m 0s | 1h 0m 0s | 5m 11s | FAIL | PASS | FAIL |
	// | **All targets** | 2 | 1.0 GiB | 6h 0m 0s | | | | FAIL | PASS | FAIL |
}
