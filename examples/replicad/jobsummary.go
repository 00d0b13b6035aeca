package main

import (
	"slices"
	"sync"
	"time"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/sdevent"
	"github.com/openbrc/brc/replica"
)

// The storage daemon plugin asks, at the end of each job (job_end with
// want_summary), for replicad's summary of that job, to write it into the
// Bacula job log. replicad answers once every target is finished with the
// job (the pass that replicated it ended), or when the wait the plugin
// asked for (wait_secs, at most maxSummaryWait) is over, with what it has
// (done false).
//
// What each target made of each job is kept in memory (jobTracker, fed by
// the engine: the JobLog records and BeforeJob), for the last
// maxTrackedJobs jobs; a job not in memory (replicad restarted) is looked
// up in the catalog.

const (
	maxSummaryWait = time.Hour
	maxTrackedJobs = 1000
	// notSeenGrace: how long after job_end a job that no pass met, while
	// no pass runs, is taken for one that wrote nothing to the volumes
	// (a restore, a verify, the reading side of a copy).
	notSeenGrace = 3 * time.Second
)

// jobOutcome is what the targets made of one job.
type jobOutcome struct {
	name    string
	seen    bool                         // a pass met it (a target began it)
	final   bool                         // the pass that met it last ended
	targets map[string]replica.JobRecord // the last record per target
}

// jobTracker follows the jobs through the passes. The engine's target
// goroutines and the pass loop write it, the plugin socket's goroutines
// read it; changed is closed (and replaced) at every change.
type jobTracker struct {
	mu          sync.Mutex
	jobs        map[uint32]*jobOutcome
	order       []uint32
	inPass      map[uint32]bool
	passRunning bool
	changed     chan struct{}
}

func newJobTracker() *jobTracker {
	return &jobTracker{jobs: map[uint32]*jobOutcome{}, inPass: map[uint32]bool{}, changed: make(chan struct{})}
}

// get returns the outcome of job id (name: its unique Job name), a new
// one if unknown or if the JobId was reused by another job. t.mu held.
func (t *jobTracker) get(id uint32, name string) *jobOutcome {
	o := t.jobs[id]
	if o != nil && (o.name == name || o.name == "" || name == "") {
		if o.name == "" {
			o.name = name
		}
		return o
	}
	if o == nil {
		t.order = append(t.order, id)
		if len(t.order) > maxTrackedJobs {
			delete(t.jobs, t.order[0])
			t.order = t.order[1:]
		}
	}
	o = &jobOutcome{name: name, targets: map[string]replica.JobRecord{}}
	t.jobs[id] = o
	return o
}

func (t *jobTracker) broadcast() { // t.mu held
	close(t.changed)
	t.changed = make(chan struct{})
}

// begin: a target begins job (Hooks.BeforeJob).
func (t *jobTracker) begin(job *bacularec.Job) {
	if job.JobID == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.get(job.JobID, job.Job).seen = true
	t.inPass[job.JobID] = true
	t.broadcast()
}

// record: the outcome of job on target (JobLog.Record, just before
// Hooks.AfterJob).
func (t *jobTracker) record(target string, job *bacularec.Job, r replica.JobRecord) {
	if job.JobID == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	o := t.get(job.JobID, job.Job)
	o.seen = true
	o.targets[target] = r
	t.inPass[job.JobID] = true
	t.broadcast()
}

func (t *jobTracker) passStarted() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.passRunning = true
	t.broadcast()
}

// passEnded: the jobs the pass met are final (retries included).
func (t *jobTracker) passEnded() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id := range t.inPass {
		if o := t.jobs[id]; o != nil {
			o.final = true
		}
	}
	clear(t.inPass)
	t.passRunning = false
	t.broadcast()
}

// snapshot returns a copy of the outcome of job id, whether a pass runs,
// and a channel closed at the next change.
func (t *jobTracker) snapshot(id uint32, name string) (jobOutcome, bool, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var c jobOutcome
	if o := t.jobs[id]; o != nil && (name == "" || o.name == "" || o.name == name) {
		c = *o
		c.targets = make(map[string]replica.JobRecord, len(o.targets))
		for k, v := range o.targets {
			c.targets[k] = v
		}
	}
	return c, t.passRunning, t.changed
}

// trackingLog is the engine's JobLog: the catalog, whose records the
// tracker sees too.
type trackingLog struct {
	replica.JobLog
	t *jobTracker
}

func (l trackingLog) Record(target string, job *bacularec.Job, r replica.JobRecord) error {
	err := l.JobLog.Record(target, job, r)
	l.t.record(target, job, r)
	return err
}

// pluginRequest handles an event of the plugin and answers a request.
func (d *daemon) pluginRequest(p sdevent.Peer, ev sdevent.Event, reply func(sdevent.Reply) error) {
	d.pluginEvent(p, ev)
	if ev.Type != sdevent.JobEnd || !ev.WantSummary {
		return
	}
	r := d.jobSummary(ev)
	if err := reply(r); err != nil {
		d.logger.Warn("plugin socket: the job summary could not be sent", "job_id", ev.JobID, "err", err)
		return
	}
	d.logger.Info("job summary sent to the plugin", "job_id", ev.JobID, "job", ev.Job, "done", r.Done, "note", r.Note)
}

// jobSummary waits, at most ev.WaitSecs, until every target is finished
// with the job, and returns what they made of it.
func (d *daemon) jobSummary(ev sdevent.Event) sdevent.Reply {
	start := time.Now()
	wait := min(max(time.Duration(ev.WaitSecs)*time.Second, 0), maxSummaryWait)
	deadline := start.Add(wait)
	names := targetNames(d.config())
	fromCatalog := d.catalogRecords(ev, names)
	r := sdevent.Reply{Type: sdevent.SummaryType, JobID: ev.JobID, Job: ev.Job}
	var o jobOutcome
	for {
		var running bool
		var changed <-chan struct{}
		o, running, changed = d.jobs.snapshot(ev.JobID, ev.Job)
		allDone := len(names) > 0
		for _, n := range names {
			rec, ok := o.targets[n]
			if !ok {
				rec, ok = fromCatalog[n]
			}
			if !ok || !rec.Done {
				allDone = false
			}
		}
		if o.final || allDone && !running {
			r.Done = true
			break
		}
		if !o.seen && !running && len(fromCatalog) == 0 && time.Since(start) >= notSeenGrace {
			r.Done, r.Note = true, "replicad found no data of this job in the volumes it follows (a restore or verify job writes none)"
			return r
		}
		if d.isPaused() {
			r.Note = "replication is paused: this replicad is promoted (failover)"
			break
		}
		now := time.Now()
		if !now.Before(deadline) {
			break
		}
		t := time.NewTimer(min(deadline.Sub(now), max(start.Add(notSeenGrace).Sub(now), 10*time.Millisecond)))
		select {
		case <-changed:
		case <-t.C:
		case <-d.stopped:
			t.Stop()
			r.Note = "replicad is stopping"
			return d.fillSummary(r, names, o, fromCatalog)
		}
		t.Stop()
	}
	return d.fillSummary(r, names, o, fromCatalog)
}

// fillSummary adds the targets to r: the job's records, the lag of each.
func (d *daemon) fillSummary(r sdevent.Reply, names []string, o jobOutcome, fromCatalog map[string]replica.JobRecord) sdevent.Reply {
	st := d.status()
	r.Targets = []sdevent.TargetSummary{}
	for _, n := range names {
		ts := sdevent.TargetSummary{Name: n}
		rec, ok := o.targets[n]
		if !ok {
			rec, ok = fromCatalog[n]
		}
		if ok {
			ts.Done, ts.Files, ts.Bytes, ts.Skipped, ts.Failed, ts.Error = rec.Done, rec.Files, rec.Bytes, rec.Skipped, rec.Errors, rec.Error
		}
		if i := slices.IndexFunc(st.Targets, func(t *targetStatus) bool { return t.Name == n }); i >= 0 {
			ts.JobsBehind, ts.LagBytes = st.Targets[i].JobsBehind, st.Targets[i].LagBytes
		}
		r.Targets = append(r.Targets, ts)
	}
	return r
}

// catalogRecords looks the job up in the catalog (a job replicated
// before replicad restarted): the records of the targets that have it.
func (d *daemon) catalogRecords(ev sdevent.Event, names []string) map[string]replica.JobRecord {
	out := map[string]replica.JobRecord{}
	if ev.Job == "" {
		return out
	}
	for _, n := range names {
		err := d.cat.Jobs(n, func(r replica.JobRecord) error {
			if r.Job == ev.Job && r.JobID == ev.JobID {
				out[n] = r
			}
			return nil
		})
		if err != nil {
			d.logger.Error("reading the catalog", "target", n, "err", err)
		}
	}
	return out
}
