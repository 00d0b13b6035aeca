// Package metrics holds replicad's Prometheus metrics: a Recorder that the
// daemon feeds from the replication engine (hooks and summaries), the
// snapshot guards, the failover controller and the plugin socket, and
// that serves them from its own registry (never the global one).
//
// Every metric is named openbrc_*. Per-target series carry a target label
// (the target's root directory). The series of the configured targets
// exist from SetTargets on, at zero, so dashboards and alerts see a
// target before its first job.
package metrics

import (
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/openbrc/brc/failover"
	"github.com/openbrc/brc/replica"
)

// Namespace prefixes every metric name.
const Namespace = "openbrc"

// Snapshot events (SnapshotEvent).
const (
	SnapshotCreated    = "created"     // taken before a job
	SnapshotKept       = "kept"        // the job ended well on the target
	SnapshotRolledBack = "rolled_back" // the target went back to it
	SnapshotFailed     = "failed"      // taking, keeping or rolling back failed
)

// Pass results (Pass).
const (
	PassCommitted  = "committed"  // read whole, every target holds every job; position saved
	PassIncomplete = "incomplete" // read whole and position saved, but a target misses jobs
	PassError      = "error"      // reading failed or the pass was interrupted: not saved
)

var (
	snapshotEvents = []string{SnapshotCreated, SnapshotKept, SnapshotRolledBack, SnapshotFailed}
	passResults    = []string{PassCommitted, PassIncomplete, PassError}
	pluginTypes    = []string{"job_start", "job_end", "device_open", "device_close", "plugin_loaded", "plugin_unloaded", "other"}
	failoverEvents = []string{"check-passed", "check-failed", "hook-started", "hook-succeeded", "hook-failed",
		"retry-scheduled", "hook-abandoned", "hook-gave-up", "role-changed", "state-error"}
	roles = []failover.Role{failover.RoleStandby, failover.RolePromoted}
)

// Recorder records the daemon's metrics. Its methods are safe for
// concurrent use.
type Recorder struct {
	reg *prometheus.Registry
	now func() time.Time

	files, bytes, skipped, failed *prometheus.CounterVec
	jobs                          *prometheus.CounterVec
	jobDuration                   *prometheus.HistogramVec
	lagJobs                       *prometheus.GaugeVec
	lastDone                      *prometheus.GaugeVec
	snapshots                     *prometheus.CounterVec
	failover                      *prometheus.CounterVec
	role                          *prometheus.GaugeVec
	paused                        prometheus.Gauge
	passes                        *prometheus.CounterVec
	passDuration                  prometheus.Histogram
	readFiles, readBytes, notices prometheus.Counter
	inflight                      prometheus.Gauge
	plugin                        *prometheus.CounterVec
	refused                       prometheus.Counter

	queueDesc, spoolDesc, lagDesc, rpoDesc *prometheus.Desc

	mu      sync.Mutex
	targets []string
	starts  map[string]time.Time // job start per target
	last    map[string]time.Time // last completed job per target
	queues  func() []replica.QueueStat
}

// New returns a Recorder with every metric registered on a registry of
// its own.
func New() *Recorder {
	r := &Recorder{reg: prometheus.NewRegistry(), now: time.Now,
		starts: map[string]time.Time{}, last: map[string]time.Time{}}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
		r.reg.MustRegister(c)
		return c
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, labels)
		r.reg.MustRegister(g)
		return g
	}
	r.files = counter("replicated_files_total", "File records replicated to the target.", "target")
	r.bytes = counter("replicated_bytes_total", "Content bytes sent to the target.", "target")
	r.skipped = counter("skipped_files_total", "Unchanged files not rewritten on the target (skip_unchanged).", "target")
	r.failed = counter("failed_files_total", "Files not replicated to the target.", "target")
	r.jobs = counter("jobs_total", "Jobs that ended on the target, by result (done: the target holds all of it and Bacula ended it OK).", "target", "result")
	r.jobDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "job_duration_seconds",
		Help: "Time to replicate one job to the target.", Buckets: prometheus.ExponentialBuckets(1, 2, 16)}, []string{"target"})
	r.reg.MustRegister(r.jobDuration)
	r.lagJobs = gauge("lag_jobs", "Jobs the target misses: not received completely after the pass's retries (failed or lagging), or held back while it is caught up from the volumes; lost jobs (volume gone) are not counted.", "target")
	r.lastDone = gauge("last_job_completed_timestamp_seconds", "Unix time at which the target last completed a job Bacula ended OK.", "target")
	r.snapshots = counter("snapshot_events_total", "Snapshots of the target by event: created, kept, rolled_back, failed.", "target", "event")
	r.failover = counter("failover_events_total", "Failover health checks (check-passed, check-failed), hooks and role changes.", "event")
	r.role = gauge("failover_role", "1 for the current failover role (standby or promoted).", "role")
	r.paused = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "replication_paused", Help: "1 while replication is paused (failover role promoted)."})
	r.passes = counter("passes_total", "Replication passes by result: committed, incomplete (a target misses jobs), error (not committed).", "result")
	r.passDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "pass_duration_seconds",
		Help: "Duration of a replication pass.", Buckets: prometheus.ExponentialBuckets(1, 2, 16)})
	r.readFiles = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "read_files_total", Help: "File records read from the volumes."})
	r.readBytes = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "read_bytes_total", Help: "Content bytes read from the volumes."})
	r.notices = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "read_notices_total", Help: "Reader problems that did not stop it (damaged blocks skipped...)."})
	r.inflight = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "jobs_in_flight", Help: "Jobs the storage daemon plugin reported started and not yet ended."})
	r.plugin = counter("plugin_events_total", "Events received from the storage daemon plugin, by type.", "type")
	r.refused = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "plugin_refused_total", Help: "Peers refused on the plugin socket (not root nor a plugin user), or unreadable events."})
	r.reg.MustRegister(r.paused, r.passDuration, r.readFiles, r.readBytes, r.notices, r.inflight, r.refused)

	r.queueDesc = prometheus.NewDesc(Namespace+"_queue_bytes", "Stream waiting in the target's memory queue (pass in progress).", []string{"target"}, nil)
	r.spoolDesc = prometheus.NewDesc(Namespace+"_spool_bytes", "Stream waiting in the target's spool file (pass in progress).", []string{"target"}, nil)
	r.lagDesc = prometheus.NewDesc(Namespace+"_lag_bytes", "Stream read but not yet consumed by the target: queue plus spool.", []string{"target"}, nil)
	r.rpoDesc = prometheus.NewDesc(Namespace+"_rpo_seconds", "Seconds since the target last completed a job Bacula ended OK (current RPO).", []string{"target"}, nil)
	r.reg.MustRegister(live{r})

	for _, e := range passResults {
		r.passes.WithLabelValues(e)
	}
	for _, t := range pluginTypes {
		r.plugin.WithLabelValues(t)
	}
	for _, e := range failoverEvents {
		r.failover.WithLabelValues(e)
	}
	r.SetRole(failover.RoleStandby, false)
	return r
}

// Registry returns the registry the metrics are on.
func (r *Recorder) Registry() *prometheus.Registry { return r.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (r *Recorder) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg})
}

// SetTargets declares the configured targets: their series appear (at
// zero), and the gauges of targets no longer configured are removed.
// Counters of removed targets stay, as counters should.
func (r *Recorder) SetTargets(names []string) {
	r.mu.Lock()
	old := r.targets
	r.targets = append([]string(nil), names...)
	r.mu.Unlock()
	keep := map[string]bool{}
	for _, t := range names {
		keep[t] = true
		r.files.WithLabelValues(t)
		r.bytes.WithLabelValues(t)
		r.skipped.WithLabelValues(t)
		r.failed.WithLabelValues(t)
		r.jobs.WithLabelValues(t, "done")
		r.jobs.WithLabelValues(t, "failed")
		r.jobDuration.WithLabelValues(t)
		r.lagJobs.WithLabelValues(t)
		for _, e := range snapshotEvents {
			r.snapshots.WithLabelValues(t, e)
		}
	}
	for _, t := range old {
		if !keep[t] {
			r.lagJobs.DeleteLabelValues(t)
			r.lastDone.DeleteLabelValues(t)
		}
	}
}

// SetQueueSource gives the function that reports the queues of the pass
// in progress (replica.Engine.Queues), called at each scrape.
func (r *Recorder) SetQueueSource(fn func() []replica.QueueStat) {
	r.mu.Lock()
	r.queues = fn
	r.mu.Unlock()
}

// JobStarted records that target began a job (Hooks.BeforeJob).
func (r *Recorder) JobStarted(target string) {
	r.mu.Lock()
	r.starts[target] = r.now()
	r.mu.Unlock()
}

// JobFinished records the end of a job on target (Hooks.AfterJob): done
// when the target holds all of it and Bacula ended it OK.
func (r *Recorder) JobFinished(target string, done bool) {
	now := r.now()
	r.mu.Lock()
	start, ok := r.starts[target]
	delete(r.starts, target)
	if done {
		r.last[target] = now
	}
	r.mu.Unlock()
	if ok {
		r.jobDuration.WithLabelValues(target).Observe(now.Sub(start).Seconds())
	}
	result := "failed"
	if done {
		result = "done"
		r.lastDone.WithLabelValues(target).Set(float64(now.UnixNano()) / 1e9)
	}
	r.jobs.WithLabelValues(target, result).Inc()
}

// LastCompleted seeds the time of the last job target completed (from the
// catalog, at start), if later than what is known.
func (r *Recorder) LastCompleted(target string, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t.After(r.last[target]) {
		r.last[target] = t
		r.lastDone.WithLabelValues(target).Set(float64(t.UnixNano()) / 1e9)
	}
}

// SnapshotEvent counts a snapshot event on target (Snapshot* constants).
func (r *Recorder) SnapshotEvent(target, event string) {
	r.snapshots.WithLabelValues(target, event).Inc()
}

// Pass records the end of a replication pass: sum is what Engine.Run
// returned (nil if it did not start), result one of the Pass* constants.
func (r *Recorder) Pass(sum *replica.Summary, result string, d time.Duration) {
	r.passes.WithLabelValues(result).Inc()
	r.passDuration.Observe(d.Seconds())
	if sum == nil {
		return
	}
	r.readFiles.Add(float64(sum.Files))
	r.readBytes.Add(float64(sum.Bytes))
	r.notices.Add(float64(sum.Notices))
	for _, t := range sum.Targets {
		r.files.WithLabelValues(t.Name).Add(float64(t.Files))
		r.bytes.WithLabelValues(t.Name).Add(float64(t.Bytes))
		r.skipped.WithLabelValues(t.Name).Add(float64(t.Skipped))
		r.failed.WithLabelValues(t.Name).Add(float64(t.Failed))
		r.lagJobs.WithLabelValues(t.Name).Set(float64(t.JobsLeft))
	}
}

// LagJobs sets the jobs target misses (its catch-up backlog), which
// outlasts the pass Pass saw: the daemon sets it after each pass and
// catch-up pass.
func (r *Recorder) LagJobs(target string, n int) {
	r.lagJobs.WithLabelValues(target).Set(float64(n))
}

// CatchUp records a catch-up pass (jobs read again from the volumes for
// the targets behind): what it replicated counts with the targets; it is
// not a pass of the stream, and reads nothing new.
func (r *Recorder) CatchUp(sum *replica.Summary) {
	if sum == nil {
		return
	}
	for _, t := range sum.Targets {
		r.files.WithLabelValues(t.Name).Add(float64(t.Files))
		r.bytes.WithLabelValues(t.Name).Add(float64(t.Bytes))
		r.skipped.WithLabelValues(t.Name).Add(float64(t.Skipped))
		r.failed.WithLabelValues(t.Name).Add(float64(t.Failed))
	}
}

// FailoverNotice counts a notice of the failover controller and follows
// the role it reports.
func (r *Recorder) FailoverNotice(n failover.Notice) {
	ev := n.Kind.String()
	if n.Kind == failover.NoticeCheck {
		ev = "check-failed"
		if n.OK {
			ev = "check-passed"
		}
	}
	r.failover.WithLabelValues(ev).Inc()
}

// SetRole records the failover role and whether replication is paused.
func (r *Recorder) SetRole(role failover.Role, paused bool) {
	for _, x := range roles {
		v := 0.0
		if x == role {
			v = 1
		}
		r.role.WithLabelValues(string(x)).Set(v)
	}
	if paused {
		r.paused.Set(1)
	} else {
		r.paused.Set(0)
	}
}

// PluginEvent counts an event from the storage daemon plugin and sets the
// number of jobs in flight.
func (r *Recorder) PluginEvent(typ string, inflight int) {
	known := false
	for _, t := range pluginTypes {
		known = known || t == typ
	}
	if !known {
		typ = "other"
	}
	r.plugin.WithLabelValues(typ).Inc()
	r.inflight.Set(float64(inflight))
}

// PluginRefused counts a peer refused on the plugin socket.
func (r *Recorder) PluginRefused() { r.refused.Inc() }

// live computes the queue, lag and RPO gauges at scrape time.
type live struct{ r *Recorder }

func (l live) Describe(ch chan<- *prometheus.Desc) {
	ch <- l.r.queueDesc
	ch <- l.r.spoolDesc
	ch <- l.r.lagDesc
	ch <- l.r.rpoDesc
}

func (l live) Collect(ch chan<- prometheus.Metric) {
	r := l.r
	r.mu.Lock()
	targets := append([]string(nil), r.targets...)
	queues := r.queues
	last := make(map[string]time.Time, len(r.last))
	for t, v := range r.last {
		last[t] = v
	}
	r.mu.Unlock()
	qs := map[string]replica.QueueStat{}
	if queues != nil {
		for _, q := range queues() {
			qs[q.Name] = q
		}
	}
	now := r.now()
	sort.Strings(targets)
	for _, t := range targets {
		q := qs[t]
		ch <- prometheus.MustNewConstMetric(r.queueDesc, prometheus.GaugeValue, float64(q.MemBytes), t)
		ch <- prometheus.MustNewConstMetric(r.spoolDesc, prometheus.GaugeValue, float64(q.SpoolBytes), t)
		ch <- prometheus.MustNewConstMetric(r.lagDesc, prometheus.GaugeValue, float64(q.MemBytes+q.SpoolBytes), t)
		if at, ok := last[t]; ok {
			ch <- prometheus.MustNewConstMetric(r.rpoDesc, prometheus.GaugeValue, now.Sub(at).Seconds(), t)
		}
	}
}
