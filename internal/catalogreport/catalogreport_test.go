package catalogreport

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/replica"
	"github.com/openbrc/brc/report"
)

const testdata = "../../bacularec/testdata/bacula-9.6.7-"

func volumes(names ...string) replica.Source {
	var paths []string
	for _, n := range names {
		paths = append(paths, testdata+n+".vol")
	}
	return func(context.Context) (*bacularec.Files, error) {
		return bacularec.NewFiles(bacularec.NewMultiReader(bacularec.FileVolumes(paths...))), nil
	}
}

// replicate runs the engine over vols to mirrors at roots, with the
// catalog as job log and index, as replicad does.
func replicate(t *testing.T, cat *replica.Catalog, roots []string, vols ...string) *replica.Summary {
	t.Helper()
	var dests []replica.Destination
	for _, r := range roots {
		m := replica.NewMirror(r, replica.MirrorOptions{SkipUnchanged: true, Index: cat.Index(r), NoOwner: os.Getuid() != 0})
		dests = append(dests, replica.Destination{Name: r, Target: m})
	}
	e := &replica.Engine{Dests: dests, Log: cat, DeferDir: t.TempDir(),
		Sleep: func(context.Context, time.Duration) error { return nil }}
	sum, err := e.Run(context.Background(), volumes(vols...))
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func openCatalog(t *testing.T) *replica.Catalog {
	t.Helper()
	cat, err := replica.OpenCatalog(filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return cat
}

func TestSourceOverCatalog(t *testing.T) {
	cat := openCatalog(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := blocker + "/dr" // cannot be created: the target fails
	before := time.Now().Add(-time.Second)
	sum := replicate(t, cat, []string{good, bad}, "accurate-1-full", "accurate-2-incr")
	if !sum.Targets[0].OK() || sum.Targets[1].Err == "" {
		t.Fatalf("summary %+v %+v", *sum.Targets[0], *sum.Targets[1])
	}
	after := time.Now().Add(time.Second)

	targets := []Target{{Name: good, Root: good}, {Name: bad, Root: bad}, {Name: "never", Root: "/nowhere"}}
	src, err := New(cat, targets, Options{MinSampleBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	infos := src.Targets()
	if len(infos) != 3 {
		t.Fatalf("targets %+v", infos)
	}
	g, b, n := infos[0], infos[1], infos[2]
	if g.Name != good || g.Root != good || g.State != report.StateOK || g.LastError != "" || g.PendingJobs != 0 ||
		g.Bandwidth <= 0 || g.LastSuccess.Before(before) || g.LastSuccess.After(after) {
		t.Errorf("good target %+v", g)
	}
	if b.State != report.StateFailed || !strings.Contains(b.LastError, "target failed") || b.PendingJobs != 1 ||
		!b.LastSuccess.IsZero() || b.Bandwidth != 0 {
		t.Errorf("failed target %+v", b)
	}
	if n != (report.TargetInfo{Name: "never", Root: "/nowhere", State: report.StateOK}) {
		t.Errorf("target without records %+v", n)
	}

	// The files are the regular files of the two jobs, each with the JobId
	// that wrote it last and the time it was written.
	var files []report.FileRecord
	jobIDs := map[uint32]int{}
	err = src.Files(good, func(f report.FileRecord) error {
		files = append(files, f)
		jobIDs[f.JobID]++
		if f.Size < 0 || f.Replicated.Before(before.Truncate(time.Second)) || f.Replicated.After(after) {
			t.Errorf("file %+v", f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	// The Full's 12 regular files (the hard link is not one), less the 4
	// the Incremental deletes or renames, plus its 2 new ones and the
	// renamed one; 4 still hold the Full's JobId.
	if len(files) != 11 || len(jobIDs) != 2 || jobIDs[13] != 4 || jobIDs[14] != 7 ||
		!slices.Contains(paths, "/tmp/brc-fixture-src/accurate/data/text-30000.txt") {
		t.Errorf("%d files, by JobId %v: %q", len(files), jobIDs, paths)
	}
	for _, target := range []string{bad, "never"} {
		if err := src.Files(target, func(f report.FileRecord) error { t.Errorf("%s: file %+v", target, f); return nil }); err != nil {
			t.Error(err)
		}
	}

	var jobs []report.JobRecord
	if err := src.Jobs(good, func(j report.JobRecord) error { jobs = append(jobs, j); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(jobs, func(a, b report.JobRecord) int { return int(a.JobID) - int(b.JobID) })
	if len(jobs) != 2 || jobs[0].JobID != 13 || jobs[1].JobID != 14 || jobs[0].Level != "F" || jobs[1].Level != "I" ||
		jobs[0].Status != "T" || jobs[0].Files != 20 || jobs[0].Bytes != 50183 || jobs[0].End.Before(jobs[0].Start) {
		t.Errorf("jobs %+v", jobs)
	}
	jobs = nil
	src.Jobs(bad, func(j report.JobRecord) error { jobs = append(jobs, j); return nil })
	if len(jobs) != 1 || jobs[0].Status != StatusIncomplete {
		t.Errorf("failed target's jobs %+v", jobs)
	}

	// The report over it.
	r, err := report.Compute(src, after.Add(time.Minute), report.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	rg := r.Targets[slices.IndexFunc(r.Targets, func(t report.Target) bool { return t.Name == good })]
	if rg.Files != 11 || rg.RPOVerdict != report.Pass || rg.RTOVerdict != report.Pass || rg.LastJob == nil || rg.LastJob.JobID != 14 {
		t.Errorf("good target in the report %+v", rg)
	}
	if len(r.Attention) != 1 || r.Attention[0].Name != bad || r.Attention[0].State != report.StateFailed {
		t.Errorf("attention %+v", r.Attention)
	}

	// With the default sample minimum, jobs this small measure nothing:
	// the bandwidth, and so the RTO, is unknown.
	src, err = New(cat, targets[:1], Options{})
	if err != nil {
		t.Fatal(err)
	}
	if bw := src.Targets()[0].Bandwidth; bw != 0 {
		t.Errorf("bandwidth from small jobs %d", bw)
	}
}

// fakeCatalog holds records as given.
type fakeCatalog struct {
	jobs  []replica.JobRecord
	files map[string]replica.IndexEntry
	err   error
}

func (c *fakeCatalog) Jobs(target string, fn func(replica.JobRecord) error) error {
	if c.err != nil {
		return c.err
	}
	for _, j := range c.jobs {
		if err := fn(j); err != nil {
			return err
		}
	}
	return nil
}

func (c *fakeCatalog) Files(target string, fn func(string, *replica.IndexEntry) error) error {
	for p, e := range c.files {
		if err := fn(p, &e); err != nil {
			return err
		}
	}
	return nil
}

func TestStateAndBandwidth(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	job := func(id uint32, start, secs int, bytes int64, done bool, errText string) replica.JobRecord {
		s := t0.Add(time.Duration(start) * time.Second)
		return replica.JobRecord{JobID: id, Start: s, End: s.Add(time.Duration(secs) * time.Second), Bytes: bytes, Done: done, Error: errText}
	}
	lagging := replica.ErrLagging.Error()
	for _, c := range []struct {
		name      string
		jobs      []replica.JobRecord
		state     report.State
		lastErr   string
		pending   int
		success   time.Time
		bandwidth int64
	}{
		{name: "none", state: report.StateOK},
		{name: "done", jobs: []replica.JobRecord{job(1, 0, 10, 100<<20, true, ""), job(2, 20, 30, 300<<20, true, "")},
			state: report.StateOK, success: t0.Add(50 * time.Second), bandwidth: 10 << 20},
		// Jobs under 1 MiB are no sample; a job with no duration neither.
		{name: "small jobs", jobs: []replica.JobRecord{job(1, 0, 1, 1<<20, true, ""), job(2, 5, 100, 1000, true, ""), job(3, 200, 0, 5<<20, true, "")},
			state: report.StateOK, success: t0.Add(200 * time.Second), bandwidth: 1 << 20},
		{name: "last failed", jobs: []replica.JobRecord{job(1, 0, 10, 0, true, ""), job(2, 20, 1, 0, false, "disk full")},
			state: report.StateFailed, lastErr: "disk full", pending: 1, success: t0.Add(10 * time.Second)},
		// The same JobId tie-break: the higher one is the last.
		{name: "tie", jobs: []replica.JobRecord{job(3, 0, 1, 0, false, "gone"), job(2, 0, 1, 0, true, "")},
			state: report.StateFailed, lastErr: "gone", pending: 1, success: t0.Add(time.Second)},
		{name: "earlier failure", jobs: []replica.JobRecord{job(1, 0, 1, 0, false, "old"), job(2, 20, 1, 0, true, "")},
			state: report.StateLagging, lastErr: "old", pending: 1, success: t0.Add(21 * time.Second)},
		{name: "lagging", jobs: []replica.JobRecord{job(1, 0, 1, 0, true, ""), job(2, 20, 1, 0, false, lagging), job(3, 30, 1, 0, false, "")},
			state: report.StateLagging, lastErr: lagging, pending: 2, success: t0.Add(time.Second)},
		{name: "cut short", jobs: []replica.JobRecord{job(1, 0, 1, 0, false, lagging)},
			state: report.StateLagging, lastErr: lagging, pending: 1},
		{name: "slow", jobs: []replica.JobRecord{job(1, 0, 1<<30, 1<<20, true, "")},
			state: report.StateOK, success: t0.Add(1 << 30 * time.Second), bandwidth: 1},
	} {
		src, err := New(&fakeCatalog{jobs: c.jobs}, []Target{{Name: "t", Root: "/t"}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := src.Targets()[0]
		want := report.TargetInfo{Name: "t", Root: "/t", State: c.state, LastError: c.lastErr, PendingJobs: c.pending,
			LastSuccess: c.success, Bandwidth: c.bandwidth}
		if got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, want)
		}
	}
}

func TestErrorsAndNeverReplicated(t *testing.T) {
	broken := errors.New("broken")
	if _, err := New(&fakeCatalog{err: broken}, []Target{{Name: "t"}}, Options{}); !errors.Is(err, broken) {
		t.Errorf("New: %v", err)
	}
	src, err := New(&fakeCatalog{files: map[string]replica.IndexEntry{"/a": {Size: 3, JobID: 7}}}, []Target{{Name: "t"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []report.FileRecord
	src.Files("t", func(f report.FileRecord) error { got = append(got, f); return nil })
	if len(got) != 1 || got[0] != (report.FileRecord{Path: "/a", Size: 3, JobID: 7}) {
		t.Errorf("files %+v", got)
	}
	stop := errors.New("stop")
	src = &Source{cat: &fakeCatalog{jobs: []replica.JobRecord{{}, {}}}}
	n := 0
	if err := src.Jobs("t", func(report.JobRecord) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("Jobs did not stop: %v after %d", err, n)
	}
}
