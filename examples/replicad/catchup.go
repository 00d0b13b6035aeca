package main

import (
	"context"
	"path/filepath"
	"strings"
	"time"

	"github.com/openbrc/brc/internal/catchup"
	"github.com/openbrc/brc/internal/source"
	"github.com/openbrc/brc/replica"
)

// The daemon's side of package catchup: after each live pass it tells the
// ledger what the pass read and what each target holds, records in the
// catalog the jobs held back from a target behind and the jobs lost; and
// between live passes it runs the catch-up passes that are due.

func openCatchUp(stateDir string, backoff time.Duration) (*catchup.Ledger, error) {
	return catchup.Open(catchup.Options{Path: filepath.Join(stateDir, "catchup.json"), Backoff: max(backoff, time.Second)})
}

// placer is the stream's, when it tells where the jobs of a pass lie.
func (d *daemon) placer() source.Placer {
	p, _ := d.src.(source.Placer)
	return p
}

// afterPass feeds the ledger with a live pass; it reports whether a
// target is behind now.
func (d *daemon) afterPass(n int, e *replica.Engine, names []string) bool {
	pl := d.placer()
	if pl == nil {
		return false
	}
	outs, err := d.catchup.AfterPass(names, pl.Placed(), d.holds)
	if err != nil {
		d.logger.Error("catch-up: recording the pass", "pass", n, "err", err)
	}
	now := time.Now()
	for _, o := range outs {
		if len(o.Missed) > 0 {
			d.logger.Warn("target behind: it is held back from later jobs and caught up from the volumes, in order",
				"pass", n, "target", o.Target, "missed", jobNames(o.Missed), "jobs_behind", o.Behind)
		}
		for _, p := range o.HeldBack {
			d.recordNotDone(e, o.Target, p, now, "held back: the target is behind; the catch-up sends it this job after the ones it misses")
		}
		if len(o.HeldBack) > 0 {
			d.logger.Info("jobs held back from a target behind", "pass", n, "target", o.Target,
				"jobs", jobNames(o.HeldBack), "jobs_behind", o.Behind)
		}
		d.reportLost(e, o.Target, o.Lost, "pass", n)
	}
	d.refreshLag(names)
	behind := false
	for _, name := range names {
		behind = behind || d.catchup.Behind(name)
	}
	return behind
}

// holds tells from the catalog whether target holds the job of p.
func (d *daemon) holds(target string, p source.JobPlace) (bool, error) {
	return d.cat.Done(target, catchup.JobOf(p))
}

// recordNotDone writes in the catalog that target does not hold p, and
// why: the RPO report counts it in pending_jobs, the job summary says it.
func (d *daemon) recordNotDone(e *replica.Engine, target string, p source.JobPlace, now time.Time, why string) {
	rec := replica.JobRecord{JobID: p.JobID, Job: catchup.Key(p), Start: now, End: now, Error: why}
	if err := e.Log.Record(target, catchup.JobOf(p), rec); err != nil {
		d.logger.Error("recording a job not done", "target", target, "job", catchup.Key(p), "err", err)
	}
}

// reportLost logs (once: the ledger reports each loss once) and records
// the jobs target lost for good.
func (d *daemon) reportLost(e *replica.Engine, target string, lost []catchup.Lost, attrs ...any) {
	for _, l := range lost {
		p := source.JobPlace{JobID: l.JobID, Job: l.Job}
		rec := replica.JobRecord{JobID: l.JobID, Job: l.Job, Start: l.Time, End: l.Time,
			Error: "lost: " + l.Reason + "; only a new backup brings its files back"}
		if err := e.Log.Record(target, catchup.JobOf(p), rec); err != nil {
			d.logger.Error("recording a lost job", "target", target, "job", l.Job, "err", err)
		}
		d.logger.Error("job lost for the target: its data is gone, only a new backup brings its files back",
			append([]any{"target", target, "job", l.Job, "job_id", l.JobID, "reason", l.Reason}, attrs...)...)
	}
}

func jobNames(ps []source.JobPlace) []string {
	var out []string
	for _, p := range ps {
		out = append(out, catchup.Key(p))
	}
	return out
}

// refreshLag sets openbrc_lag_jobs from the ledger.
func (d *daemon) refreshLag(names []string) {
	if d.placer() == nil {
		return
	}
	for _, n := range names {
		d.rec.LagJobs(n, d.catchup.Status(n).Behind)
	}
}

// catchUpWait returns how long until a catch-up is due (ok false: none).
func (d *daemon) catchUpWait() (time.Duration, bool) {
	next, ok := d.catchup.NextDue()
	if !ok {
		return 0, false
	}
	return max(time.Until(next), 0), true
}

// runCatchUp runs a catch-up pass for the targets due, if any: only they
// receive, only the jobs they miss, in order, read again from the
// volumes that hold them.
func (d *daemon) runCatchUp(ctx context.Context) {
	due := d.catchup.Due()
	if len(due) == 0 {
		return
	}
	e := d.currentEngine()
	plan, err := d.catchup.Plan(due, d.holds)
	if err != nil {
		d.logger.Error("catch-up: planning", "err", err) // the plan stands
	}
	for target, jobs := range plan.Held {
		d.logger.Info("catch-up: the target holds these jobs already (replicated by hand?): not sent again", "target", target, "jobs", jobs)
	}
	for target, lost := range plan.Lost {
		d.reportLost(e, target, lost, "found", "catch-up")
	}
	if plan.Empty() {
		res, err := d.catchup.Finish(plan, nil, nil)
		if err != nil {
			d.logger.Error("catch-up: saving", "err", err)
		}
		d.catchUpResults(e, res)
		d.rpoReport(ctx, d.config())
		if d.opt.onCatchUp != nil {
			d.opt.onCatchUp(res)
		}
		return
	}
	want := map[string]bool{}
	for _, t := range plan.Targets {
		want[t] = true
	}
	var dests []replica.Destination
	for _, dst := range e.Dests {
		if want[dst.Name] {
			dests = append(dests, dst)
		}
	}
	// Retries are the ledger's (backoff between catch-up passes).
	ce := &replica.Engine{Dests: dests, Log: plan.Log(e.Log), Hooks: e.Hooks, Logger: e.Logger, DeferDir: e.DeferDir}
	start := time.Now()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.mu.Lock()
	d.state = "catching_up"
	d.catchUpEngine = ce
	d.cancelPass = cancel
	if d.paused {
		cancel()
	}
	d.mu.Unlock()
	d.logger.Info("catch-up started", "targets", plan.Targets, "jobs", jobNames(plan.Places))
	// Every target failed (still down): reading on would send nothing.
	go func() {
		select {
		case <-plan.AllFailed():
			cancel()
		case <-pctx.Done():
		}
	}()
	d.jobs.passStarted()
	sum, runErr := ce.Run(pctx, source.ReadJobs(plan.Places))
	select {
	case <-plan.AllFailed():
		if ctx.Err() == nil {
			runErr = nil // the targets' failures say it
		}
	default:
	}
	d.mu.Lock()
	d.cancelPass = nil
	d.catchUpEngine = nil
	if sum != nil {
		for _, t := range sum.Targets {
			if ts := d.targets[t.Name]; ts != nil {
				ts.Files += t.Files
				ts.Bytes += t.Bytes
				ts.Failed += t.Failed
				if t.Err != "" {
					now := time.Now()
					ts.LastError, ts.LastErrorAt = t.Err, &now
				}
			}
		}
	}
	d.mu.Unlock()
	d.rec.CatchUp(sum)
	res, err := d.catchup.Finish(plan, sum, runErr)
	if err != nil {
		d.logger.Error("catch-up: saving", "err", err)
	}
	d.jobs.passEnded()
	attrs := []any{"seconds", time.Since(start).Seconds(), "targets", plan.Targets}
	if runErr != nil {
		attrs = append(attrs, "err", runErr)
	}
	d.logger.Info("catch-up ended", attrs...)
	d.catchUpResults(e, res)
	d.rpoReport(ctx, d.config())
	if d.opt.onCatchUp != nil {
		d.opt.onCatchUp(res)
	}
}

// catchUpResults logs what a catch-up pass did for each target.
func (d *daemon) catchUpResults(e *replica.Engine, res []catchup.Result) {
	var names []string
	for _, r := range res {
		names = append(names, r.Target)
		d.reportLost(e, r.Target, r.Lost, "found", "catch-up")
		switch {
		case r.CaughtUp:
			d.logger.Info("target caught up: it holds every job read, and takes part in live passes again",
				"target", r.Target, "jobs", r.Done)
		case r.Err != "":
			d.logger.Warn("catch-up: the target is still behind", "target", r.Target, "jobs_done", r.Done,
				"jobs_behind", r.Behind, "next_attempt", r.Next.Format(time.RFC3339), "err", r.Err)
		default:
			d.logger.Info("catch-up: progress", "target", r.Target, "jobs_done", r.Done, "jobs_behind", r.Behind)
		}
	}
	d.refreshLag(names)
}

// logBehind tells, at start, of the targets still behind.
func (d *daemon) logBehind(names []string) {
	for _, n := range names {
		if st := d.catchup.Status(n); st.Behind > 0 {
			d.logger.Warn("target behind: catching it up", "target", n, "jobs_behind", st.Behind,
				"first", strings.Join(st.Jobs[:min(len(st.Jobs), 3)], ", "))
		}
	}
}

// catchUpStatus is the catch-up state of a target in /status.
type catchUpStatus struct {
	Jobs        []string   `json:"jobs"` // the first jobs it waits for (at most 20), in order
	Since       *time.Time `json:"since,omitempty"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	Attempts    int        `json:"attempts"` // catch-up passes that brought it nothing since the last progress
	LastError   string     `json:"last_error,omitempty"`
}

// lostJob is a job a target misses for good (its volume is gone).
type lostJob struct {
	Job    string    `json:"job"`
	JobID  uint32    `json:"job_id"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// fillCatchUp sets the catch-up fields of a target's status.
func (d *daemon) fillCatchUp(ts *targetStatus) {
	st := d.catchup.Status(ts.Name)
	if d.placer() != nil {
		ts.JobsBehind = st.Behind
	}
	if st.Behind > 0 {
		ts.CatchUp = &catchUpStatus{Jobs: st.Jobs, Since: st.Since, NextAttempt: st.NextAttempt,
			Attempts: st.Attempts, LastError: st.LastError}
	}
	for _, l := range st.Lost {
		ts.LostJobs = append(ts.LostJobs, lostJob(l))
	}
}
