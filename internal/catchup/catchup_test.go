package catchup

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/source"
	"github.com/openbrc/brc/replica"
)

// clock is a clock the test moves.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func place(id uint32, vol string) source.JobPlace {
	return source.JobPlace{Session: bacularec.SessionKey{ID: id, Time: 1000}, JobID: id, Job: fmt.Sprintf("Job.%d", id),
		Extents: []source.Extent{{Path: vol, Volume: source.VolumeID{VolumeName: vol, CRC: id}, Start: 100, End: 1100}}}
}

// jobLog is a JobLog in memory: per target, the jobs done.
type jobLog struct {
	mu      sync.Mutex
	done    map[string]map[string]bool
	records []string
}

func newJobLog() *jobLog { return &jobLog{done: map[string]map[string]bool{}} }

func (l *jobLog) Done(target string, job *bacularec.Job) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done[target][jobKey(job)], nil
}

func (l *jobLog) Record(target string, job *bacularec.Job, r replica.JobRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done[target] == nil {
		l.done[target] = map[string]bool{}
	}
	l.done[target][jobKey(job)] = l.done[target][jobKey(job)] || r.Done
	l.records = append(l.records, fmt.Sprintf("%s %s %v", target, jobKey(job), r.Done))
	return nil
}

func (l *jobLog) set(target string, p source.JobPlace) {
	l.Record(target, JobOf(p), replica.JobRecord{Done: true})
}

func (l *jobLog) isDone(target string, p source.JobPlace) (bool, error) {
	return l.Done(target, JobOf(p))
}

func open(t *testing.T, dir string, c *clock, check func(source.Extent) error) *Ledger {
	t.Helper()
	l, err := Open(Options{Path: filepath.Join(dir, "catchup.json"), Backoff: 30 * time.Second, MaxBackoff: 2 * time.Minute,
		Now: c.now, Check: check})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func keys(ps []source.JobPlace) []string {
	var out []string
	for _, p := range ps {
		out = append(out, Key(p))
	}
	return out
}

// A target that misses job 1 is held back from job 2, waits for both in
// order, is caught up in one pass and then takes part in live passes
// again; the healthy target is never planned.
func TestHoldBackAndCatchUp(t *testing.T) {
	c := newClock()
	l := open(t, t.TempDir(), c, func(source.Extent) error { return nil })
	log := newJobLog()
	live := l.HoldBack(log)
	j1, j2, j3 := place(1, "/v/Vol-1"), place(2, "/v/Vol-2"), place(3, "/v/Vol-3")

	// Pass 1: a gets job 1, b fails.
	log.set("a", j1)
	out, err := l.AfterPass([]string{"a", "b"}, []source.JobPlace{j1}, log.isDone)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Target != "b" || !slices.Equal(keys(out[0].Missed), []string{"Job.1"}) || out[0].Behind != 1 {
		t.Fatalf("pass 1: %+v", out)
	}
	if !l.Behind("b") || l.Behind("a") {
		t.Fatal("behind")
	}
	// Pass 2: b is told it holds job 2 (held back), a is not.
	if done, _ := live.Done("b", JobOf(j2)); !done {
		t.Fatal("job 2 not held back from b")
	}
	if done, _ := live.Done("a", JobOf(j2)); done {
		t.Fatal("job 2 held back from a")
	}
	log.set("a", j2)
	out, _ = l.AfterPass([]string{"a", "b"}, []source.JobPlace{j2}, log.isDone)
	if len(out) != 1 || !slices.Equal(keys(out[0].HeldBack), []string{"Job.2"}) || out[0].Behind != 2 {
		t.Fatalf("pass 2: %+v", out)
	}

	// Not due before the backoff.
	if due := l.Due(); len(due) != 0 {
		t.Fatalf("due at once: %v", due)
	}
	next, ok := l.NextDue()
	if !ok || !next.Equal(c.now().Add(30*time.Second)) {
		t.Fatalf("next %v %v", next, ok)
	}
	c.advance(30 * time.Second)
	due := l.Due()
	if !slices.Equal(due, []string{"b"}) {
		t.Fatalf("due %v", due)
	}
	p, err := l.Plan(due, log.isDone)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Targets, []string{"b"}) || !slices.Equal(keys(p.Places), []string{"Job.1", "Job.2"}) {
		t.Fatalf("plan %+v", p)
	}
	pl := p.Log(log)
	for _, tc := range []struct {
		target string
		job    source.JobPlace
		done   bool
	}{{"b", j1, false}, {"b", j2, false}, {"b", j3, true}, {"a", j1, true}} {
		if done, _ := pl.Done(tc.target, JobOf(tc.job)); done != tc.done {
			t.Errorf("plan log: %s %s done %v", tc.target, Key(tc.job), done)
		}
	}
	// b takes both.
	pl.Record("b", JobOf(j1), replica.JobRecord{Done: true})
	pl.Record("b", JobOf(j2), replica.JobRecord{Done: true})
	res, err := l.Finish(p, &replica.Summary{Targets: []*replica.TargetSummary{{Name: "b", JobsDone: 2}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || !res[0].CaughtUp || !slices.Equal(res[0].Done, []string{"Job.1", "Job.2"}) || res[0].Behind != 0 {
		t.Fatalf("finish %+v", res)
	}
	if l.Behind("b") {
		t.Fatal("b still behind")
	}
	if _, ok := l.NextDue(); ok {
		t.Fatal("a catch-up still due")
	}
	// Pass 3 goes to both.
	if done, _ := live.Done("b", JobOf(j3)); done {
		t.Fatal("job 3 held back from b after it caught up")
	}
}

// A catch-up pass that brings nothing doubles the wait up to the cap; one
// that brings something makes the next due at once; the last error is
// kept for the status.
func TestBackoff(t *testing.T) {
	c := newClock()
	l := open(t, t.TempDir(), c, func(source.Extent) error { return nil })
	log := newJobLog()
	j1, j2 := place(1, "/v/1"), place(2, "/v/2")
	l.AfterPass([]string{"b"}, []source.JobPlace{j1, j2}, log.isDone)
	var waits []time.Duration
	for range 4 {
		next, _ := l.NextDue()
		waits = append(waits, next.Sub(c.now()))
		c.t = next
		p, _ := l.Plan(l.Due(), log.isDone)
		select {
		case <-p.AllFailed():
			t.Fatal("all failed before anything was recorded")
		default:
		}
		p.Log(log).Record("b", JobOf(j1), replica.JobRecord{Error: "replica: target failed: disk full"})
		select {
		case <-p.AllFailed():
		default:
			t.Fatal("the only target failed, AllFailed not closed")
		}
		res, _ := l.Finish(p, &replica.Summary{Targets: []*replica.TargetSummary{{Name: "b", Err: "replica: target failed: disk full"}}}, nil)
		if len(res) != 1 || res[0].Err != "replica: target failed: disk full" || res[0].Behind != 2 {
			t.Fatalf("finish %+v", res)
		}
	}
	if want := []time.Duration{30 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute}; !slices.Equal(waits, want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	st := l.Status("b")
	if st.Behind != 2 || st.Attempts != 4 || st.LastError != "replica: target failed: disk full" || st.NextAttempt == nil ||
		!st.NextAttempt.Equal(c.now().Add(2*time.Minute)) || !slices.Equal(st.Jobs, []string{"Job.1", "Job.2"}) {
		t.Fatalf("status %+v", st)
	}
	// Job 1 goes through, job 2 does not: due again at once.
	c.t = *st.NextAttempt
	p, _ := l.Plan(l.Due(), log.isDone)
	p.Log(log).Record("b", JobOf(j1), replica.JobRecord{Done: true})
	p.Log(log).Record("b", JobOf(j2), replica.JobRecord{Error: "disk full"})
	res, _ := l.Finish(p, &replica.Summary{Targets: []*replica.TargetSummary{{Name: "b", Err: "disk full"}}}, nil)
	if len(res) != 1 || !slices.Equal(res[0].Done, []string{"Job.1"}) || res[0].Behind != 1 || !res[0].Next.Equal(c.now()) {
		t.Fatalf("partial %+v", res)
	}
	if st := l.Status("b"); st.Attempts != 0 || st.LastError != "" {
		t.Fatalf("after progress %+v", st)
	}
	// Retry (a reload) makes it due now, from the first backoff.
	c.advance(time.Second)
	l.Retry()
	if due := l.Due(); !slices.Equal(due, []string{"b"}) {
		t.Fatalf("due after Retry %v", due)
	}
}

// A volume recycled since is found when planning: its job is lost for
// every target waiting for it, the others are planned; a job missed on a
// FIFO without copies is lost at once and holds nothing back.
func TestLost(t *testing.T) {
	c := newClock()
	recycled := map[string]bool{}
	l := open(t, t.TempDir(), c, func(e source.Extent) error {
		if recycled[e.Path] {
			return fmt.Errorf("%w: volume %s was relabelled", source.ErrVolumeChanged, e.Path)
		}
		return nil
	})
	log := newJobLog()
	j1, j2, j3 := place(1, "/v/Vol-1"), place(2, "/v/Vol-2"), place(3, "/v/Vol-3")
	l.AfterPass([]string{"b", "c"}, []source.JobPlace{j1, j2, j3}, log.isDone)
	recycled["/v/Vol-2"] = true
	c.advance(time.Minute)
	p, err := l.Plan([]string{"b"}, log.isDone) // c is not due, but loses job 2 too
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys(p.Places), []string{"Job.1", "Job.3"}) || len(p.Lost["b"]) != 1 || len(p.Lost["c"]) != 1 ||
		p.Lost["b"][0].Job != "Job.2" || p.Lost["b"][0].JobID != 2 || !strings.Contains(p.Lost["b"][0].Reason, "Vol-2 was relabelled") {
		t.Fatalf("plan %+v", p)
	}
	if st := l.Status("c"); st.Behind != 2 || len(st.Lost) != 1 {
		t.Fatalf("c %+v", st)
	}
	// Job 3 was not in its volume after all: lost too.
	p.Log(log).Record("b", JobOf(j1), replica.JobRecord{Done: true})
	res, _ := l.Finish(p, &replica.Summary{Targets: []*replica.TargetSummary{{Name: "b"}}}, nil)
	if len(res) != 1 || !res[0].CaughtUp || len(res[0].Lost) != 1 || res[0].Lost[0].Job != "Job.3" ||
		!strings.Contains(res[0].Lost[0].Reason, "not found in [/v/Vol-3]") {
		t.Fatalf("finish %+v", res)
	}
	if st := l.Status("b"); st.Behind != 0 || len(st.Lost) != 2 {
		t.Fatalf("b %+v", st)
	}

	// FIFO without copies.
	gone := source.JobPlace{Session: bacularec.SessionKey{ID: 9, Time: 1000}, JobID: 9, Job: "Job.9", Gone: "the FIFO stream is not kept"}
	j10 := place(10, "/copies/x.vol")
	log.set("d", j10)
	out, _ := l.AfterPass([]string{"d"}, []source.JobPlace{gone, j10}, log.isDone)
	if len(out) != 1 || len(out[0].Lost) != 1 || out[0].Lost[0].Reason != "the FIFO stream is not kept" || l.Behind("d") {
		t.Fatalf("fifo: %+v", out)
	}
	// Reported once: the next pass says nothing of it.
	if out, _ := l.AfterPass([]string{"d"}, nil, log.isDone); len(out) != 0 {
		t.Fatalf("again: %+v", out)
	}
}

// A job a target received after one it missed (out of order) is sent
// again after it; jobs it received before are not.
func TestOutOfOrder(t *testing.T) {
	c := newClock()
	l := open(t, t.TempDir(), c, func(source.Extent) error { return nil })
	log := newJobLog()
	j1, j2, j3 := place(1, "/v/1"), place(2, "/v/2"), place(3, "/v/3")
	log.set("b", j1)
	log.set("b", j3)
	out, _ := l.AfterPass([]string{"b"}, []source.JobPlace{j1, j2, j3}, log.isDone)
	if len(out) != 1 || !slices.Equal(keys(out[0].Missed), []string{"Job.2", "Job.3"}) {
		t.Fatalf("%+v", out)
	}
	c.advance(time.Hour)
	p, _ := l.Plan(l.Due(), log.isDone)
	if done, _ := p.Log(log).Done("b", JobOf(j3)); done {
		t.Fatal("job 3 not sent again")
	}
	// Even when job 2 comes in a pass of its own before it (a chunk):
	// the JobLog says b holds job 3, yet it is sent again after job 2.
	l.opt.ChunkBytes = 1
	p, _ = l.Plan(l.Due(), log.isDone)
	if !slices.Equal(keys(p.Places), []string{"Job.2"}) {
		t.Fatalf("chunk %v", keys(p.Places))
	}
	p.Log(log).Record("b", JobOf(j2), replica.JobRecord{Done: true})
	l.Finish(p, &replica.Summary{Targets: []*replica.TargetSummary{{Name: "b"}}}, nil)
	p, _ = l.Plan(l.Due(), log.isDone)
	if !slices.Equal(keys(p.Places), []string{"Job.3"}) || len(p.Held["b"]) != 0 {
		t.Fatalf("job 3 after job 2: %+v", p)
	}
}

// A target that received its first missed jobs by other means (replicad
// replicate while the daemon was stopped) is not sent them again; a job
// it holds after one it still misses is.
func TestHeldAlready(t *testing.T) {
	c := newClock()
	l := open(t, t.TempDir(), c, func(source.Extent) error { return nil })
	log := newJobLog()
	j1, j2, j3, j4 := place(1, "/v/1"), place(2, "/v/2"), place(3, "/v/3"), place(4, "/v/4")
	log.set("b", j4)
	l.AfterPass([]string{"b", "c"}, []source.JobPlace{j1, j2, j3, j4}, log.isDone)
	log.set("b", j1)
	log.set("b", j2)
	log.set("c", j1)
	log.set("c", j2)
	log.set("c", j3)
	log.set("c", j4)
	l.Retry()
	p, err := l.Plan(l.Due(), log.isDone)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Held["b"], []string{"Job.1", "Job.2"}) || !slices.Equal(p.Targets, []string{"b"}) ||
		!slices.Equal(keys(p.Places), []string{"Job.3", "Job.4"}) || !slices.Equal(p.CaughtUp, []string{"c"}) {
		t.Fatalf("plan %+v", p)
	}
	res, _ := l.Finish(p, nil, nil)
	if len(res) != 2 || res[0].Target != "c" || !res[0].CaughtUp || res[1].Target != "b" || res[1].Behind != 2 {
		t.Fatalf("finish %+v", res)
	}
}

// The ledger survives a restart; targets behind are due at once then; a
// target no longer configured is forgotten.
func TestPersist(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	l := open(t, dir, c, nil)
	log := newJobLog()
	l.AfterPass([]string{"b", "c"}, []source.JobPlace{place(1, "/v/1"), place(2, "/v/2")}, log.isDone)
	c.advance(time.Second)
	l2 := open(t, dir, c, nil)
	if st := l2.Status("b"); st.Behind != 2 || !slices.Equal(l2.Due(), []string{"b", "c"}) {
		t.Fatalf("reopened: %+v, due %v", st, l2.Due())
	}
	if err := l2.SetTargets([]string{"b"}); err != nil {
		t.Fatal(err)
	}
	if l3 := open(t, dir, c, nil); l3.Behind("c") || !l3.Behind("b") {
		t.Fatal("c not forgotten")
	}
}

// A catch-up pass reads at most ChunkBytes (at least one job); live
// passes run between.
func TestChunk(t *testing.T) {
	c := newClock()
	l, err := Open(Options{Path: filepath.Join(t.TempDir(), "c.json"), ChunkBytes: 1500, Now: c.now,
		Check: func(source.Extent) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	log := newJobLog()
	j := []source.JobPlace{place(1, "/v/1"), place(2, "/v/2"), place(3, "/v/3")}
	l.AfterPass([]string{"b"}, j, log.isDone)
	l.Retry()
	for i := range j {
		p, _ := l.Plan(l.Due(), log.isDone)
		if !slices.Equal(keys(p.Places), []string{Key(j[i])}) {
			t.Fatalf("chunk %d: %v", i, keys(p.Places))
		}
		p.Log(log).Record("b", JobOf(j[i]), replica.JobRecord{Done: true})
		res, _ := l.Finish(p, &replica.Summary{Targets: []*replica.TargetSummary{{Name: "b"}}}, nil)
		if res[0].CaughtUp != (i == 2) || !res[0].Next.Equal(c.now()) && i < 2 {
			t.Fatalf("chunk %d: %+v", i, res)
		}
	}
}

// A read that fails on a volume that changed after the plan is planned
// again at once (and then finds the job lost).
func TestVolumeChangedDuringRead(t *testing.T) {
	c := newClock()
	l := open(t, t.TempDir(), c, func(source.Extent) error { return nil })
	log := newJobLog()
	l.AfterPass([]string{"b"}, []source.JobPlace{place(1, "/v/1")}, log.isDone)
	l.Retry()
	p, _ := l.Plan(l.Due(), log.isDone)
	res, _ := l.Finish(p, &replica.Summary{Targets: []*replica.TargetSummary{{Name: "b"}}},
		fmt.Errorf("%w: volume /v/1 was relabelled", source.ErrVolumeChanged))
	if len(res) != 1 || res[0].Behind != 1 || !res[0].Next.Equal(c.now()) || !strings.Contains(res[0].Err, "relabelled") {
		t.Fatalf("%+v", res)
	}
}
