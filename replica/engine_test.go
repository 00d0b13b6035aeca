package replica

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openbrc/brc/bacularec"
)

func TestEngineTwoTargets(t *testing.T) {
	a, b := NewMemory(), NewMemory()
	e := &Engine{Dests: []Destination{{Name: "a", Target: a}, {Name: "b", Target: b}}}
	sum, err := e.Run(context.Background(), source(vols("plain-md5")...))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed() || sum.Jobs != 1 || sum.Files != 54 {
		t.Fatalf("summary %+v", sum)
	}
	for _, m := range []*Memory{a, b} {
		checkMemory(t, m, "plain")
		if j := m.Jobs(); len(j) != 1 || j[0].JobID != 1 || !j[0].OK() {
			t.Errorf("jobs %+v", j)
		}
	}
	for _, ts := range sum.Targets {
		if ts.Files != 54 || ts.JobsDone != 1 || ts.Bytes != 350273 {
			t.Errorf("%s: %+v", ts.Name, ts)
		}
	}
}

// A target that fails (disk full) fails alone; the retry pass replays the
// job to it once it recovers.
func TestEngineFailureIsolationAndRetry(t *testing.T) {
	good, bad := NewMemory(), NewMemory()
	var puts atomic.Int64
	healthy := atomic.Bool{}
	bad.Fail = func(op, path string) error {
		if op == "put" && puts.Add(1) == 10 && !healthy.Load() {
			return &FileError{Path: path, Err: syscall.ENOSPC} // even wrapped as a file error: fatal
		}
		return nil
	}
	bad.Fail = func(op, path string) error {
		if op == "put" && puts.Add(1) >= 10 && !healthy.Load() {
			return fmt.Errorf("write %s: %w", path, syscall.ENOSPC)
		}
		return nil
	}
	var slept []time.Duration
	e := &Engine{
		Dests: []Destination{{Name: "good", Target: good}, {Name: "bad", Target: bad}},
		Retry: RetryPolicy{Attempts: 2, Backoff: time.Second},
		Sleep: func(ctx context.Context, d time.Duration) error {
			slept = append(slept, d)
			healthy.Store(true)
			return nil
		},
	}
	sum, err := e.Run(context.Background(), source(vols("gzip-sha1")...))
	if err != nil {
		t.Fatal(err)
	}
	checkMemory(t, good, "plain")
	checkMemory(t, bad, "plain")
	g, bd := sum.Targets[0], sum.Targets[1]
	if !g.OK() || g.Attempts != 1 || !bd.OK() || bd.Attempts != 2 || len(slept) != 1 || slept[0] != time.Second {
		t.Errorf("good %+v, bad %+v, slept %v", g, bd, slept)
	}
	if len(bad.Jobs()) != 1 {
		t.Errorf("bad ended %d jobs", len(bad.Jobs()))
	}
}

// A target that stays broken is reported with its error and the job left.
func TestEngineTargetStaysFailed(t *testing.T) {
	good, bad := NewMemory(), NewMemory()
	bad.Fail = func(op, path string) error {
		if op == "begin" {
			return syscall.EROFS
		}
		return nil
	}
	e := &Engine{Dests: []Destination{{Name: "good", Target: good}, {Name: "bad", Target: bad}},
		Retry: RetryPolicy{Attempts: 1}, Sleep: func(context.Context, time.Duration) error { return nil }}
	sum, err := e.Run(context.Background(), source(vols("plain-md5")...))
	if err != nil {
		t.Fatal(err)
	}
	checkMemory(t, good, "plain")
	bd := sum.Targets[1]
	if bd.OK() || bd.JobsLeft != 1 || bd.Attempts != 2 || bd.Err != "replica: target failed: read-only file system" {
		t.Errorf("bad %+v", bd)
	}
	if !sum.Failed() || len(bad.Paths()) != 0 {
		t.Errorf("failed %v, bad holds %d paths", sum.Failed(), len(bad.Paths()))
	}
}

// Files a target refuses are counted; the target goes on.
func TestEngineFileErrors(t *testing.T) {
	m := NewMemory()
	m.Fail = func(op, path string) error {
		if op == "put" && len(path) > 4 && path[len(path)-4:] == ".txt" {
			return &FileError{Path: path, Err: errors.New("refused")}
		}
		return nil
	}
	var hooked []string
	e := &Engine{Dests: []Destination{{Name: "m", Target: m}},
		Hooks: Hooks{FileError: func(target string, fe *FileError) { hooked = append(hooked, fe.Path) }}}
	sum, err := e.Run(context.Background(), source(vols("plain-md5")...))
	if err != nil {
		t.Fatal(err)
	}
	ts := sum.Targets[0]
	if ts.Failed == 0 || int(ts.Failed) != len(ts.FailedIDs) || len(hooked) != int(ts.Failed) || ts.JobsDone != 1 {
		t.Errorf("summary %+v, hooked %v", ts, hooked)
	}
}

// slow delays each Put of the target it wraps.
type slow struct {
	Target
	d time.Duration
}

func (s *slow) Put(ctx context.Context, f *bacularec.File, c Content) error {
	time.Sleep(s.d)
	return s.Target.Put(ctx, f, c)
}

// A slow target with a small queue and no spool lags: it is cut, the
// others go on at full speed, and it is resynchronised from the volumes.
func TestEngineLaggingResync(t *testing.T) {
	fast, slowMem := NewMemory(), NewMemory()
	e := &Engine{Dests: []Destination{
		{Name: "fast", Target: fast},
		{Name: "slow", Target: &slow{slowMem, 2 * time.Millisecond}, QueueBytes: 4096},
	}, SpillGrace: -1}
	sum, err := e.Run(context.Background(), source(vols("plain-md5")...))
	if err != nil {
		t.Fatal(err)
	}
	checkMemory(t, fast, "plain")
	checkMemory(t, slowMem, "plain")
	f, s := sum.Targets[0], sum.Targets[1]
	if f.Attempts != 1 || s.Lagged == 0 || s.Attempts < 2 || !s.OK() {
		t.Errorf("fast %+v, slow %+v", f, s)
	}
}

// With a spool the slow target's backlog goes to disk and is replayed in
// order: no lag, no resync.
func TestEngineSpool(t *testing.T) {
	fast, slowMem := NewMemory(), NewMemory()
	e := &Engine{Dests: []Destination{
		{Name: "fast", Target: fast},
		{Name: "slow", Target: &slow{slowMem, time.Millisecond}, QueueBytes: 4096, SpoolDir: t.TempDir()},
	}, SpillGrace: -1}
	sum, err := e.Run(context.Background(), source(vols("sparse-md5")...))
	if err != nil {
		t.Fatal(err)
	}
	checkMemory(t, fast, "sparse")
	checkMemory(t, slowMem, "sparse")
	s := sum.Targets[1]
	if s.Lagged != 0 || s.Attempts != 1 || s.MaxSpool == 0 || !s.OK() {
		t.Errorf("slow %+v", s)
	}
}

// gated holds every Put of the target it wraps until open is closed.
type gated struct {
	Target
	open chan struct{}
}

func (g *gated) Put(ctx context.Context, f *bacularec.File, c Content) error {
	<-g.open
	return g.Target.Put(ctx, f, c)
}

// The reader does not wait for a full target while the others' queues run
// low: it spills at once, whatever SpillGrace says, and the others go on.
func TestEngineSpillNoStarving(t *testing.T) {
	fast, stuckMem := NewMemory(), NewMemory()
	stuck := &gated{stuckMem, make(chan struct{})}
	time.AfterFunc(300*time.Millisecond, func() { close(stuck.open) })
	e := &Engine{Dests: []Destination{
		{Name: "fast", Target: fast},
		{Name: "stuck", Target: stuck, QueueBytes: 4096, SpoolDir: t.TempDir()},
	}, SpillGrace: 20 * time.Second}
	start := time.Now()
	sum, err := e.Run(context.Background(), source(vols("sparse-md5")...))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the run took %v: the reader waited out the grace", d)
	}
	checkMemory(t, fast, "sparse")
	checkMemory(t, stuckMem, "sparse")
	if s := sum.Targets[1]; s.MaxSpool == 0 || s.Lagged != 0 || !s.OK() {
		t.Errorf("stuck %+v", s)
	}
}

// When every target is full, the reader goes on as soon as one of them
// has room: the other spools meanwhile. Waiting for each in turn held
// a fast target idle until a slow one (1 MB/s, or here stuck) drained
// half its queue.
func TestEngineAllFullWaitsForFirst(t *testing.T) {
	fastMem, slowMem := NewMemory(), NewMemory()
	slow := &gated{slowMem, make(chan struct{})}
	fast := &gated{fastMem, make(chan struct{})}
	time.AfterFunc(100*time.Millisecond, func() { close(fast.open) })
	time.AfterFunc(3*time.Second, func() { close(slow.open) })
	var mu sync.Mutex
	ended := map[string]time.Duration{}
	start := time.Now()
	e := &Engine{Dests: []Destination{
		{Name: "slow", Target: slow, QueueBytes: 4096, SpoolDir: t.TempDir()},
		{Name: "fast", Target: fast, QueueBytes: 4096, SpoolDir: t.TempDir()},
	}, Hooks: Hooks{AfterJob: func(_ context.Context, target string, _ *bacularec.Job, _ error) {
		mu.Lock()
		ended[target] = time.Since(start)
		mu.Unlock()
	}}}
	sum, err := e.Run(context.Background(), source(vols("sparse-md5")...))
	if err != nil {
		t.Fatal(err)
	}
	checkMemory(t, fastMem, "sparse")
	checkMemory(t, slowMem, "sparse")
	t.Logf("fast target done after %v, slow one after %v", ended["fast"], ended["slow"])
	if ended["fast"] > 2*time.Second || ended["slow"] < 3*time.Second {
		t.Errorf("fast target done after %v, slow one after %v: want the fast one long before the slow one opens (3s)", ended["fast"], ended["slow"])
	}
	if s := sum.Targets[0]; s.MaxSpool == 0 || s.Lagged != 0 || s.Attempts != 1 || !s.OK() {
		t.Errorf("slow %+v", s)
	}
	if s := sum.Targets[1]; s.Lagged != 0 || s.Attempts != 1 || !s.OK() {
		t.Errorf("fast %+v", s)
	}
}

// A target only slow to start is waited for while the other target still
// has work queued, which costs that one nothing: it is not spilled. (It
// was, once the reader had waited for it a tenth of the pass so far,
// which early in a pass is next to nothing.)
func TestEngineGraceWhileOthersBusy(t *testing.T) {
	lateMem, busyMem := NewMemory(), NewMemory()
	late := &gated{lateMem, make(chan struct{})}
	time.AfterFunc(100*time.Millisecond, func() { close(late.open) })
	e := &Engine{Dests: []Destination{
		{Name: "late", Target: late, QueueBytes: 4096, SpoolDir: t.TempDir()},
		{Name: "busy", Target: &slow{busyMem, 150 * time.Millisecond}},
	}, SpillGrace: time.Second}
	sum, err := e.Run(context.Background(), source(vols("sparse-md5")...))
	if err != nil {
		t.Fatal(err)
	}
	checkMemory(t, lateMem, "sparse")
	checkMemory(t, busyMem, "sparse")
	if s := sum.Targets[0]; s.MaxSpool != 0 || !s.OK() {
		t.Errorf("late %+v: want it waited for, not spooled", s)
	}
}

// Two jobs interleaved in one volume reach targets one after the other.
func TestEngineInterleavedJobs(t *testing.T) {
	m := NewMemory()
	e := &Engine{Dests: []Destination{{Name: "m", Target: m, QueueBytes: 64 << 10}}, DeferDir: t.TempDir()}
	sum, err := e.Run(context.Background(), source(vols("interleave-2jobs")...))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Jobs != 2 || sum.Failed() {
		t.Fatalf("summary %+v %+v", sum, sum.Targets[0])
	}
	jobs := m.Jobs()
	if len(jobs) != 2 || jobs[0].JobID == jobs[1].JobID {
		t.Fatalf("jobs %+v", jobs)
	}
	checkMemory(t, m, "plain")
}

// With a JobLog, a second run sends nothing a target already holds,
// unless asked to replay.
func TestEngineJobLog(t *testing.T) {
	cat, err := OpenCatalog(t.TempDir() + "/catalog.db")
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	m := NewMemory()
	run := func(replay bool) *TargetSummary {
		e := &Engine{Dests: []Destination{{Name: "m", Target: m}}, Log: cat, Replay: replay}
		sum, err := e.Run(context.Background(), source(vols("accurate-1-full", "accurate-2-incr")...))
		if err != nil {
			t.Fatal(err)
		}
		return sum.Targets[0]
	}
	if s := run(false); s.JobsDone != 2 || s.Files == 0 {
		t.Fatalf("first %+v", s)
	}
	if s := run(false); s.JobsDone != 0 || s.Files != 0 {
		t.Fatalf("second %+v", s)
	}
	if s := run(true); s.JobsDone != 2 || s.Files == 0 {
		t.Fatalf("replay %+v", s)
	}
	var recs []JobRecord
	cat.Jobs("m", func(r JobRecord) error { recs = append(recs, r); return nil })
	if len(recs) != 2 || !recs[0].Done || recs[0].Attempts != 2 || recs[0].Status != "T" {
		t.Errorf("records %+v", recs)
	}
}
