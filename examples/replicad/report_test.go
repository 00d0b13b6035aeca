package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openbrc/brc/replica"
	"github.com/openbrc/brc/report"
)

func readReport(t *testing.T, data []byte) *report.Report {
	t.Helper()
	var r report.Report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if r.Schema != "openbrc.report/v1" {
		t.Fatalf("schema %q", r.Schema)
	}
	return &r
}

// rpo_report_dir: replicate writes the report of the catalog after the
// run; replicad report prints it. skip_unchanged is off: the index is kept
// for the report all the same.
func TestReplicateReportDir(t *testing.T) {
	dir := t.TempDir()
	dr := filepath.Join(dir, "dr")
	reports := filepath.Join(dir, "reports")
	common := "targets = " + dr + "\nstate_dir = " + dir + "/state\nrpo_report_dir = " + reports + "\n"
	generous := writeConf(t, dir, common+"sla_rpo_secs = 86400\nsla_rto_secs = 86400\n")
	out, errOut, rc := replicad(t, "replicate", "-c", generous, accurate+"1-full.vol", accurate+"2-incr.vol")
	done := time.Now()
	if rc != 0 || !strings.Contains(out, "report "+reports+"/report-") || !strings.Contains(out, "verdict unknown (RPO pass, RTO unknown), 0 files over the RPO") {
		t.Fatalf("rc %d\n%s\n%s", rc, out, errOut)
	}
	latest, err := os.ReadFile(filepath.Join(reports, "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	r := readReport(t, latest)
	// 11 regular files (see internal/catalogreport's test);
	// the jobs are too small to measure a bandwidth: RTO unknown.
	if r.Totals.Files != 11 || r.RPOVerdict != report.Pass || r.RTOVerdict != report.Unknown || r.Verdict != report.Unknown ||
		r.SLA.RPOSecs != 86400 || r.SLA.RTOSecs != 86400 || r.SLA.RTOOverheadSecs != 300 || len(r.Targets) != 1 {
		t.Fatalf("report %+v", r)
	}
	tg := r.Targets[0]
	if tg.Name != dr || tg.State != report.StateOK || tg.LastJob == nil || tg.LastJob.JobID != 14 || tg.Jobs.Jobs != 2 || tg.LastSuccess == nil {
		t.Errorf("target %+v", tg)
	}
	names := func() []string {
		ents, err := os.ReadDir(reports)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	ls := names()
	if len(ls) != 4 || ls[0] != "latest.json" || ls[1] != "latest.md" || !strings.HasPrefix(ls[2], "report-") || !strings.HasSuffix(ls[3], ".md") {
		t.Fatalf("report dir %q", ls)
	}
	if dated, _ := os.ReadFile(filepath.Join(reports, ls[2])); !bytes.Equal(dated, latest) {
		t.Errorf("%s differs from latest.json", ls[2])
	}
	if md, _ := os.ReadFile(filepath.Join(reports, "latest.md")); !strings.HasPrefix(string(md), "# RPO/RTO compliance report, ") {
		t.Errorf("latest.md:\n%s", md)
	}

	// The same catalog against an RPO of 1 s, once the files are 2 s old.
	time.Sleep(time.Until(done.Add(2100 * time.Millisecond)))
	os.Mkdir(filepath.Join(dir, "strict"), 0o700)
	strict := writeConf(t, filepath.Join(dir, "strict"), common+"sla_rpo_secs = 1\n")
	out, errOut, rc = replicad(t, "report", "-c", strict, "-format", "json")
	if rc != 0 {
		t.Fatalf("report rc %d\n%s", rc, errOut)
	}
	r = readReport(t, []byte(out))
	if r.Totals.Files != 11 || r.Totals.RPOBreaches != 11 || r.RPOVerdict != report.Fail || r.Verdict != report.Fail ||
		len(r.RPOBreaches.Worst) != 11 || *r.RPOBreaches.Worst[0].AgeSecs < 2 {
		t.Errorf("strict report %+v", r)
	}

	// A second replicate (nothing new to send) writes a new dated report
	// and replaces latest.
	out, errOut, rc = replicad(t, "replicate", "-c", strict, accurate+"1-full.vol", accurate+"2-incr.vol")
	if rc != 0 || !strings.Contains(out, "verdict fail (RPO fail, RTO unknown), 11 files over the RPO") {
		t.Fatalf("rc %d\n%s\n%s", rc, out, errOut)
	}
	if ls := names(); len(ls) != 6 {
		t.Errorf("report dir %q", ls)
	}
	latest, _ = os.ReadFile(filepath.Join(reports, "latest.json"))
	if r := readReport(t, latest); r.Verdict != report.Fail || r.SLA.RPOSecs != 1 {
		t.Errorf("latest %+v", r)
	}

	out, errOut, rc = replicad(t, "report", "-c", generous, "-format", "md")
	if rc != 0 || !strings.HasPrefix(out, "# RPO/RTO compliance report, ") || !strings.Contains(out, "## Summary") ||
		!strings.Contains(out, "| "+dr+" | 11 |") || !strings.Contains(out, "| **Overall** | **UNKNOWN** |") {
		t.Errorf("rc %d\n%s\n%s", rc, out, errOut)
	}
}

func TestReportErrors(t *testing.T) {
	dir := t.TempDir()
	common := "targets = " + dir + "/dr\nstate_dir = " + dir + "/state\n"

	// An RPO of 0 is refused before anything is replicated.
	conf := writeConf(t, dir, common+"rpo_report_dir = "+dir+"/reports\nsla_rpo_secs = 0\n")
	_, errOut, rc := replicad(t, "replicate", "-c", conf, accurate+"1-full.vol")
	if rc != 1 || !strings.Contains(errOut, "sla_rpo_secs = 0: the RPO must be at least 1 second") {
		t.Errorf("rc %d: %s", rc, errOut)
	}
	if _, err := os.Stat(dir + "/dr"); !os.IsNotExist(err) {
		t.Errorf("replicated anyway: %v", err)
	}

	conf = writeConf(t, dir, common)
	_, errOut, rc = replicad(t, "report", "-c", conf)
	if rc != 1 || !strings.Contains(errOut, "no catalog at "+dir+"/state/catalog.db") {
		t.Errorf("rc %d: %s", rc, errOut)
	}
	if _, errOut, rc = replicad(t, "report", "-c", conf, "-format", "html"); rc != 2 || !strings.Contains(errOut, "html") {
		t.Errorf("rc %d: %s", rc, errOut)
	}

	// A catalog held by another process (a running replicate).
	if _, errOut, rc = replicad(t, "replicate", "-c", conf, accurate+"1-full.vol"); rc != 0 {
		t.Fatal(errOut)
	}
	cat, err := replica.OpenCatalog(dir + "/state/catalog.db")
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	_, errOut, rc = replicad(t, "report", "-c", conf, "-wait", "1s")
	if rc != 1 || !strings.Contains(errOut, "is in use by another process") {
		t.Errorf("rc %d: %s", rc, errOut)
	}
}
