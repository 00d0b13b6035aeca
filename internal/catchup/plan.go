package catchup

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/source"
	"github.com/openbrc/brc/replica"
)

// Plan is one catch-up pass: the jobs to read, in order, and which of
// them each target is to receive.
type Plan struct {
	// Targets receive jobs in this pass.
	Targets []string
	// Places are the jobs to read (source.ReadJobs), in order.
	Places []source.JobPlace
	// Lost are, per target, the jobs found lost while planning.
	Lost map[string][]Lost
	// Held are, per target, the first jobs it waited for that it turned
	// out to hold already (replicated by hand, replicad replicate, while
	// the daemon was stopped): they are not sent again.
	Held map[string][]string
	// CaughtUp are targets due that wait for nothing any more (what they
	// waited for was held already, or lost).
	CaughtUp []string

	want    map[string]map[string]bool      // per target, the keys it receives
	session map[bacularec.SessionKey]string // the key of each job to read

	mu        sync.Mutex
	recorded  map[string]map[string]bool // per target, key: recorded done?
	failed    map[string]bool            // targets that failed in the pass
	allFailed chan struct{}
}

// AllFailed is closed once every target of the plan failed (a job
// recorded with replica.ErrTargetFailed): reading on is of no use.
func (p *Plan) AllFailed() <-chan struct{} { return p.allFailed }

// Empty reports whether the plan has nothing to read.
func (p *Plan) Empty() bool { return len(p.Places) == 0 }

// Plan prepares a catch-up pass for the targets given (Due): it drops
// the first jobs a target waits for that it holds already (holds, the
// JobLog: only the first ones, as a job held after one missed is to be
// applied again after it), checks the volumes of every job they wait
// for, takes the jobs of volumes that changed out of every pending list
// (Lost), and takes the jobs left in order up to ChunkBytes. The plan
// returned is usable even with an error (holds or saving failed).
func (l *Ledger) Plan(targets []string, holds func(target string, p source.JobPlace) (bool, error)) (*Plan, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.opt.Now()
	p := &Plan{Lost: map[string][]Lost{}, Held: map[string][]string{}, want: map[string]map[string]bool{},
		session: map[bacularec.SessionKey]string{}, recorded: map[string]map[string]bool{},
		failed: map[string]bool{}, allFailed: make(chan struct{})}
	keys := map[string]bool{}
	var errs []error
	for _, name := range targets {
		t := l.st.Targets[name]
		if t == nil {
			continue
		}
		for len(t.Pending) > 0 && !slices.Contains(t.Replay, t.Pending[0]) {
			ok, err := holds(name, l.st.Jobs[t.Pending[0]].Place)
			if err != nil {
				errs = append(errs, fmt.Errorf("catchup: target %s, job %s: %w", name, t.Pending[0], err))
			}
			if !ok {
				break
			}
			p.Held[name] = append(p.Held[name], t.Pending[0])
			t.Pending = t.Pending[1:]
		}
		for _, k := range t.Pending {
			keys[k] = true
		}
	}
	// Check each volume once, each job in full.
	checked := map[source.Extent]error{}
	lost := map[string]string{}
	for k := range keys {
		for _, e := range l.st.Jobs[k].Place.Extents {
			err, ok := checked[e]
			if !ok {
				err = l.opt.Check(e)
				checked[e] = err
			}
			if errors.Is(err, source.ErrVolumeChanged) {
				lost[k] = err.Error()
				break
			}
		}
	}
	if len(lost) > 0 {
		// Lost for every target waiting for it, due or not.
		for name, t := range l.st.Targets {
			var gone []Lost
			t.Pending = slices.DeleteFunc(t.Pending, func(k string) bool {
				why, ok := lost[k]
				if ok {
					j := l.st.Jobs[k]
					gone = append(gone, Lost{Job: k, JobID: j.Place.JobID, Reason: why, Time: now})
				}
				return ok
			})
			if len(gone) > 0 {
				l.lose(name, gone)
				p.Lost[name] = gone
			}
		}
	}
	var order []string
	for k := range keys {
		if _, ok := lost[k]; !ok {
			order = append(order, k)
		}
	}
	slices.SortFunc(order, func(a, b string) int { return cmp.Compare(l.st.Jobs[a].Seq, l.st.Jobs[b].Seq) })
	var bytes int64
	chunk := map[string]bool{}
	for _, k := range order {
		j := l.st.Jobs[k]
		var n int64
		for _, e := range j.Place.Extents {
			n += e.End - e.Start
		}
		if len(p.Places) > 0 && bytes+n > l.opt.ChunkBytes {
			break
		}
		bytes += n
		chunk[k] = true
		p.Places = append(p.Places, j.Place)
		p.session[j.Place.Session] = k
	}
	for _, name := range targets {
		t := l.st.Targets[name]
		if t == nil {
			continue
		}
		if len(t.Pending) == 0 {
			p.CaughtUp = append(p.CaughtUp, name)
			continue
		}
		w := map[string]bool{}
		for _, k := range t.Pending {
			if chunk[k] {
				w[k] = true
			}
		}
		if len(w) > 0 {
			p.want[name] = w
			p.recorded[name] = map[string]bool{}
			p.Targets = append(p.Targets, name)
		}
	}
	l.gc()
	return p, errors.Join(append(errs, l.save())...)
}

// Log wraps the catch-up engine's JobLog: each target of the plan is sent
// exactly the jobs it is to receive, even one it held already (a job
// applied out of order is applied again after the one it overtook), and
// nothing else; the outcomes are noted for Finish.
func (p *Plan) Log(inner replica.JobLog) replica.JobLog { return planLog{JobLog: inner, p: p} }

type planLog struct {
	replica.JobLog
	p *Plan
}

func (l planLog) Done(target string, job *bacularec.Job) (bool, error) {
	return !l.p.want[target][l.p.key(job)], nil
}

// key is the ledger's key of a job read: by its session, which the
// source and the reader agree on even if the source could not read the
// name in the start label.
func (p *Plan) key(job *bacularec.Job) string {
	if k, ok := p.session[job.Session]; ok {
		return k
	}
	return jobKey(job)
}

func (l planLog) Record(target string, job *bacularec.Job, r replica.JobRecord) error {
	err := l.JobLog.Record(target, job, r)
	k := l.p.key(job)
	p := l.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if rec := p.recorded[target]; rec != nil && p.want[target][k] {
		rec[k] = rec[k] || r.Done && err == nil
		if !r.Done && strings.HasPrefix(r.Error, replica.ErrTargetFailed.Error()) && !p.failed[target] {
			p.failed[target] = true
			if len(p.failed) == len(p.Targets) {
				close(p.allFailed)
			}
		}
	}
	return err
}

// Result is what a catch-up pass did for one target.
type Result struct {
	Target   string
	Done     []string // jobs it received, in order
	Behind   int      // jobs it still waits for
	CaughtUp bool     // it holds everything: back in live passes
	Lost     []Lost   // jobs its volumes did not hold (not found)
	Err      string   // why it made no progress
	Next     time.Time
}

// Finish records the outcome of the plan's pass: sum and err are what
// the engine's Run returned. A target drops from its pending list the
// jobs it received, in order; a job the engine never began for a target
// that did not fail, in a read that did not fail, is not in its volumes:
// lost. A target that received something is due again at once, one that
// did not waits twice as long as last time.
func (l *Ledger) Finish(p *Plan, sum *replica.Summary, runErr error) ([]Result, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	now := l.opt.Now()
	var out []Result
	for _, name := range p.CaughtUp {
		if !l.behind(name) {
			out = append(out, Result{Target: name, CaughtUp: true})
		}
	}
	for _, name := range p.Targets {
		t := l.st.Targets[name]
		if t == nil {
			continue // forgotten meanwhile (reload)
		}
		r := Result{Target: name}
		var ts *replica.TargetSummary
		if sum != nil {
			for _, s := range sum.Targets {
				if s.Name == name {
					ts = s
				}
			}
		}
		rec := p.recorded[name]
		failed := runErr != nil || ts == nil || ts.Err != ""
		var gone []Lost
		kept := t.Pending[:0]
		progressing := true
		for _, k := range t.Pending {
			switch {
			case progressing && rec[k]:
				r.Done = append(r.Done, k)
				continue
			case p.want[name][k] && !failed:
				if _, began := rec[k]; !began {
					j := l.st.Jobs[k]
					gone = append(gone, Lost{Job: k, JobID: j.Place.JobID, Time: now,
						Reason: fmt.Sprintf("its blocks were not found in %s", volumes(j.Place))})
					continue
				}
			}
			progressing = false
			kept = append(kept, k)
		}
		t.Pending = kept
		if len(gone) > 0 {
			l.lose(name, gone)
			r.Lost = gone
		}
		r.Behind = len(t.Pending)
		switch {
		case len(t.Pending) == 0:
			r.CaughtUp = true
			t.Since, t.Next, t.Attempts, t.Backoff, t.LastError = time.Time{}, time.Time{}, 0, 0, ""
		case len(r.Done) > 0 || len(gone) > 0:
			t.Attempts, t.Backoff, t.LastError = 0, l.opt.Backoff, ""
			t.Next = now
		default:
			t.Attempts++
			switch {
			case ts != nil && ts.Err != "":
				t.LastError = ts.Err
			case runErr != nil:
				t.LastError = runErr.Error()
			default:
				t.LastError = "the target did not complete the jobs sent to it"
			}
			if errors.Is(runErr, source.ErrVolumeChanged) {
				t.Next = now // planned again at once: the check finds the job lost
			} else {
				t.Next = now.Add(t.Backoff)
				t.Backoff = min(2*t.Backoff, l.opt.MaxBackoff)
			}
			r.Err = t.LastError
		}
		r.Next = t.Next
		out = append(out, r)
	}
	l.gc()
	return out, l.save()
}

func volumes(p source.JobPlace) string {
	var names []string
	for _, e := range p.Extents {
		if !slices.Contains(names, e.Path) {
			names = append(names, e.Path)
		}
	}
	return fmt.Sprint(names)
}
