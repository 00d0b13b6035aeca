// Package catchup brings back up to date, from the volumes, the targets
// of replicad run that missed jobs: a target that failed (mount gone,
// disk full, ...) after the pass's own retries, or lagged too often.
//
// A Ledger, kept in a JSON file in the state directory, records per
// target the jobs it misses ("pending", in the order they were read) and,
// per pending job, where it lies: the volume files, offsets and volume
// labellings a pass read it from (source.JobPlace). It is fed after each
// live pass (AfterPass) with what the pass read and what each target now
// holds; it then plans catch-up passes (Plan) for the targets behind whose
// next attempt is due, and learns their outcome (Finish).
//
// # Order
//
// Jobs must reach a target in backup order: applying an old job after a
// newer one writes older content over newer files. A target that misses
// job J is therefore held back: later live passes send it nothing (the
// JobLog given to the live engine, HoldBack, says it holds their jobs),
// and their jobs are added to its pending list, behind J. A catch-up pass
// then sends it its pending jobs in order, from the volumes, and only to
// it. Once it holds them all it takes part in live passes again.
//
// Holding back rather than replaying J and every job after it: each job
// is written once to the target (no second write of jobs it already
// holds, no extra retention versions or snapshots for them), and while
// behind, the target holds a prefix of the backup history, never a
// mixture of old and new jobs. A target that is down would not have
// received the later jobs anyway; one that recovers gets them within a
// catch-up pass.
//
// # Lost jobs
//
// A pending job can be read again only while the volumes it was read
// from hold it: before each catch-up pass every volume is checked
// (source.CheckExtent: same labelling, not shorter). A job whose volume
// was deleted, recycled or relabelled since, or that the pass read from a
// FIFO whose stream is not kept, is lost for the targets that miss it: it
// leaves their pending lists (the jobs after it are not held for it, as
// nothing can bring it back) and is reported (Lost) so that the daemon
// logs it and records it not done in the catalog; only a new backup
// brings its files back.
//
// # Scheduling
//
// A target that falls behind is first tried Backoff after; each catch-up
// pass that brings it nothing doubles the wait, up to MaxBackoff. A pass
// that makes progress makes the next one due at once. A catch-up pass
// takes the due targets' pending jobs in order up to ChunkBytes of
// volume data (at least one job), so that live passes get their turn in
// between. Retry makes every behind target due now (a reload, a restart).
//
// A target may get jobs by other means while the daemon is stopped
// (replicad replicate): Plan drops the first jobs of its pending list
// that the JobLog says it holds, and does not send them again.
package catchup

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/atomicfile"
	"github.com/openbrc/brc/internal/source"
	"github.com/openbrc/brc/replica"
)

// Defaults.
const (
	DefaultBackoff    = 30 * time.Second
	DefaultMaxBackoff = 10 * time.Minute
	DefaultChunkBytes = 1 << 30
	// maxLost is how many lost jobs are kept per target for the status.
	maxLost = 100
)

// Options configures a Ledger.
type Options struct {
	// Path is the state file (replicad: state_dir/catchup.json).
	Path string
	// Backoff is the wait before the first catch-up of a target (default
	// DefaultBackoff), doubled after each catch-up pass that brought it
	// nothing, up to MaxBackoff (default DefaultMaxBackoff).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// ChunkBytes bounds the volume data a catch-up pass reads (default
	// DefaultChunkBytes); it always takes at least one job.
	ChunkBytes int64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Check tells whether a volume still holds what was read there
	// (default source.CheckExtent).
	Check func(source.Extent) error
}

// Lost is a job a target misses and that no volume holds any more.
type Lost struct {
	Job    string    `json:"job"`
	JobID  uint32    `json:"job_id"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// Ledger is the catch-up state of every target. Its methods are safe for
// concurrent use.
type Ledger struct {
	opt Options
	mu  sync.Mutex
	st  state
}

const stateVersion = 1

type state struct {
	Version int                `json:"version"`
	Seq     uint64             `json:"seq"`
	Jobs    map[string]*job    `json:"jobs"`    // pending somewhere, by key
	Targets map[string]*target `json:"targets"` // behind, or with lost jobs
}

type job struct {
	Seq   uint64          `json:"seq"` // reading order
	Place source.JobPlace `json:"place"`
}

type target struct {
	Pending []string `json:"pending,omitempty"` // job keys, in reading order
	// Replay are pending jobs it held already, applied before one it
	// missed: sent again even though the JobLog says it holds them.
	Replay    []string      `json:"replay,omitempty"`
	Since     time.Time     `json:"since,omitzero"`
	Attempts  int           `json:"attempts,omitempty"` // catch-up passes without progress
	Next      time.Time     `json:"next,omitzero"`
	Backoff   time.Duration `json:"backoff,omitempty"`
	LastError string        `json:"last_error,omitempty"`
	Lost      []Lost        `json:"lost,omitempty"`
}

// Open loads the ledger at opt.Path (a missing file is an empty ledger).
// Targets behind are due at once: a restart often follows a repair.
func Open(opt Options) (*Ledger, error) {
	if opt.Backoff <= 0 {
		opt.Backoff = DefaultBackoff
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = DefaultMaxBackoff
	}
	opt.MaxBackoff = max(opt.MaxBackoff, opt.Backoff)
	if opt.ChunkBytes <= 0 {
		opt.ChunkBytes = DefaultChunkBytes
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Check == nil {
		opt.Check = source.CheckExtent
	}
	l := &Ledger{opt: opt, st: state{Version: stateVersion, Jobs: map[string]*job{}, Targets: map[string]*target{}}}
	b, err := os.ReadFile(opt.Path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("catchup: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("catchup: %s: %w", opt.Path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("catchup: %s: version %d, want %d", opt.Path, st.Version, stateVersion)
	}
	if st.Jobs == nil {
		st.Jobs = map[string]*job{}
	}
	if st.Targets == nil {
		st.Targets = map[string]*target{}
	}
	for _, t := range st.Targets {
		t.Pending = slices.DeleteFunc(t.Pending, func(k string) bool { return st.Jobs[k] == nil })
	}
	l.st = st
	l.retry()
	return l, nil
}

// Key is the name a job has in the JobLog (replica's, Bacula's unique
// job name), for a place.
func Key(p source.JobPlace) string {
	if p.Job != "" {
		return p.Job
	}
	return "session " + p.Session.String()
}

func jobKey(j *bacularec.Job) string {
	if j.Job != "" {
		return j.Job
	}
	return "session " + j.Session.String()
}

// JobOf is the job of a place as the JobLog knows it.
func JobOf(p source.JobPlace) *bacularec.Job {
	return &bacularec.Job{Session: p.Session, Started: true, JobID: p.JobID, Job: p.Job}
}

// Behind reports whether target misses jobs it is to be caught up with.
func (l *Ledger) Behind(target string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.behind(target)
}

func (l *Ledger) behind(name string) bool {
	t := l.st.Targets[name]
	return t != nil && len(t.Pending) > 0
}

// HoldBack wraps the live engine's JobLog: a target behind is told it
// holds every job, so live passes send it nothing (see Order).
func (l *Ledger) HoldBack(inner replica.JobLog) replica.JobLog {
	return holdBack{JobLog: inner, l: l}
}

type holdBack struct {
	replica.JobLog
	l *Ledger
}

func (h holdBack) Done(target string, job *bacularec.Job) (bool, error) {
	if h.l.Behind(target) {
		return true, nil
	}
	return h.JobLog.Done(target, job)
}

// Outcome is what a pass changed for one target.
type Outcome struct {
	Target string
	// Missed are the jobs of the pass the target did not receive whole
	// and now waits for (not counting HeldBack).
	Missed []source.JobPlace
	// HeldBack are the jobs of the pass not sent to the target because it
	// was behind; it waits for them too.
	HeldBack []source.JobPlace
	// Lost are jobs it missed that no volume keeps.
	Lost []Lost
	// Behind: the jobs it waits for, after the pass.
	Behind int
}

// AfterPass records what a live pass did: placed are the jobs it read
// whole (source.Placer), done tells whether a target holds a job now.
// Every target that missed a job, or was behind, waits for the jobs it
// does not hold, in order; from the first job a target missed on, it
// waits also for the later ones it holds (a job applied out of order is
// applied again after the one it overtook). Outcomes are returned for the
// targets whose state changed.
func (l *Ledger) AfterPass(targets []string, placed []source.JobPlace, done func(target string, p source.JobPlace) (bool, error)) ([]Outcome, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.opt.Now()
	var out []Outcome
	for _, name := range targets {
		wasBehind := l.behind(name)
		o := Outcome{Target: name}
		waiting := wasBehind
		for _, p := range placed {
			ok, err := done(name, p)
			if err != nil {
				return nil, fmt.Errorf("catchup: target %s, job %s: %w", name, Key(p), err)
			}
			if ok && !waiting {
				continue
			}
			if ok && wasBehind {
				continue // a job read again (restart) that it received meanwhile
			}
			if !ok && p.Gone != "" {
				o.Lost = append(o.Lost, Lost{Job: Key(p), JobID: p.JobID, Reason: p.Gone, Time: now})
				continue
			}
			if p.Gone != "" {
				continue // cannot be replayed for order: it stays as it is
			}
			if ok {
				t := l.target(name)
				if !slices.Contains(t.Replay, Key(p)) {
					t.Replay = append(t.Replay, Key(p))
				}
			}
			if l.add(name, p, now) {
				if wasBehind {
					o.HeldBack = append(o.HeldBack, p)
				} else {
					o.Missed = append(o.Missed, p)
				}
			}
			waiting = true
		}
		if len(o.Lost) > 0 {
			l.lose(name, o.Lost)
		}
		if len(o.Missed)+len(o.HeldBack)+len(o.Lost) > 0 {
			o.Behind = l.pendingLen(name)
			out = append(out, o)
		}
	}
	l.gc()
	return out, l.save()
}

// add appends p to target's pending list (once); it reports whether it
// was added.
func (l *Ledger) add(name string, p source.JobPlace, now time.Time) bool {
	k := Key(p)
	j := l.st.Jobs[k]
	if j == nil {
		l.st.Seq++
		j = &job{Seq: l.st.Seq}
		l.st.Jobs[k] = j
	}
	j.Place = p
	t := l.target(name)
	if slices.Contains(t.Pending, k) {
		return false
	}
	if len(t.Pending) == 0 {
		t.Since, t.Attempts, t.Backoff, t.LastError = now, 0, l.opt.Backoff, ""
		t.Next = now.Add(t.Backoff)
	}
	t.Pending = append(t.Pending, k)
	slices.SortStableFunc(t.Pending, func(a, b string) int { return cmp.Compare(l.st.Jobs[a].Seq, l.st.Jobs[b].Seq) })
	return true
}

func (l *Ledger) target(name string) *target {
	t := l.st.Targets[name]
	if t == nil {
		t = &target{}
		l.st.Targets[name] = t
	}
	return t
}

func (l *Ledger) pendingLen(name string) int {
	if t := l.st.Targets[name]; t != nil {
		return len(t.Pending)
	}
	return 0
}

func (l *Ledger) lose(name string, lost []Lost) {
	t := l.target(name)
	t.Lost = append(t.Lost, lost...)
	if n := len(t.Lost) - maxLost; n > 0 {
		t.Lost = slices.Delete(t.Lost, 0, n)
	}
}

// gc forgets the jobs no target waits for, and the targets with nothing
// to tell.
func (l *Ledger) gc() {
	used := map[string]bool{}
	for name, t := range l.st.Targets {
		for _, k := range t.Pending {
			used[k] = true
		}
		t.Replay = slices.DeleteFunc(t.Replay, func(k string) bool { return !slices.Contains(t.Pending, k) })
		if len(t.Pending) == 0 && len(t.Lost) == 0 {
			delete(l.st.Targets, name)
		}
	}
	maps.DeleteFunc(l.st.Jobs, func(k string, _ *job) bool { return !used[k] })
}

func (l *Ledger) save() error {
	b, err := json.MarshalIndent(&l.st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(l.opt.Path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("catchup: saving %s: %w", l.opt.Path, err)
	}
	return nil
}

// SetTargets forgets the targets not in names (no longer configured).
func (l *Ledger) SetTargets(names []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.st.Targets)
	maps.DeleteFunc(l.st.Targets, func(k string, _ *target) bool { return !slices.Contains(names, k) })
	if n == len(l.st.Targets) {
		return nil
	}
	l.gc()
	return l.save()
}

// SetBackoff changes the first wait (a reload changed retry_backoff); 0
// keeps it.
func (l *Ledger) SetBackoff(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d > 0 {
		l.opt.Backoff = d
		l.opt.MaxBackoff = max(l.opt.MaxBackoff, d)
	}
}

// Retry makes every target behind due now, with the first backoff again.
func (l *Ledger) Retry() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.retry()
}

func (l *Ledger) retry() {
	now := l.opt.Now()
	for _, t := range l.st.Targets {
		if len(t.Pending) > 0 {
			t.Next, t.Backoff = now, l.opt.Backoff
		}
	}
}

// NextDue returns when the next catch-up is due (ok false: no target is
// behind).
func (l *Ledger) NextDue() (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var next time.Time
	ok := false
	for _, t := range l.st.Targets {
		if len(t.Pending) > 0 && (!ok || t.Next.Before(next)) {
			next, ok = t.Next, true
		}
	}
	return next, ok
}

// Due returns the targets behind whose catch-up is due, sorted.
func (l *Ledger) Due() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.opt.Now()
	var out []string
	for name, t := range l.st.Targets {
		if len(t.Pending) > 0 && !t.Next.After(now) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Status is the catch-up state of one target.
type Status struct {
	Behind      int        // jobs it waits for
	Jobs        []string   // the first of them (at most 20), in order
	Since       *time.Time // behind since
	NextAttempt *time.Time
	Attempts    int // catch-up passes that brought it nothing, since the last progress
	LastError   string
	Lost        []Lost // the latest jobs lost for it
}

// Status returns target's catch-up state.
func (l *Ledger) Status(name string) Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.st.Targets[name]
	if t == nil {
		return Status{}
	}
	s := Status{Behind: len(t.Pending), Jobs: slices.Clone(t.Pending[:min(len(t.Pending), 20)]),
		Attempts: t.Attempts, LastError: t.LastError, Lost: slices.Clone(t.Lost)}
	if len(t.Pending) > 0 {
		since, next := t.Since, t.Next
		s.Since, s.NextAttempt = &since, &next
	}
	return s
}
