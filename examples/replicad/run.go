package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/failover"
	"github.com/openbrc/brc/internal/catchup"
	"github.com/openbrc/brc/internal/config"
	"github.com/openbrc/brc/internal/metrics"
	"github.com/openbrc/brc/internal/run"
	"github.com/openbrc/brc/internal/sdevent"
	"github.com/openbrc/brc/replica"
)

// stream is what package internal/source gives the daemon (Follow for
// volume_dir, FIFO for fifo_path): the volumes, one pass at a time.
type stream interface {
	// Next waits for new data and returns the Source of the next pass
	// (the engine opens it again to replay a job to a target that failed).
	Next(ctx context.Context) (func(context.Context) (*bacularec.Files, error), error)
	// Commit persists the position reached by the pass Next returned.
	Commit() error
	// JobEnded tells the stream that the storage daemon ended a job (the
	// plugin said so), so the pass can end without waiting for idle_secs.
	JobEnded(jobID uint32)
	Close() error
}

// runOptions are what cmdRun wires and tests replace.
type runOptions struct {
	conf      string
	stderr    io.Writer
	reload    <-chan struct{}                                               // SIGHUP
	newStream func(cfg *config.Config, logger *slog.Logger) (stream, error) // nil: openSource
	runner    run.Runner                                                    // failover commands; nil: run.Exec
	ready     func(metricsAddr string)                                      // called once serving
	onPass    func(result string, sum *replica.Summary)                     // called after each pass
	onCatchUp func(res []catchup.Result)                                    // called after each catch-up pass
}

// cmdRun is the daemon: it follows the storage daemon's volumes and
// replicates each pass to the targets, in the foreground.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, conf := configFlags("run", stderr)
	if err := parseNoArgs(fs, "usage: replicad run [-c FILE]", args); err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	return runDaemon(ctx, runOptions{conf: *conf, stderr: stderr, reload: reload})
}

// daemon is the state of "replicad run".
type daemon struct {
	opt     runOptions
	logger  *slog.Logger
	level   *slog.LevelVar
	rec     *metrics.Recorder
	cat     *replica.Catalog
	catchup *catchup.Ledger // the targets behind (catchup.go)
	src     stream
	fo      *failover.Controller // nil: failover disabled
	start   time.Time

	wake    chan struct{} // the role changed or a reload is asked for
	jobs    *jobTracker   // per job, what the targets made of it (jobsummary.go)
	stopped chan struct{} // closed when the pass loop has ended

	mu            sync.Mutex
	cfg           *config.Config
	engine        *replica.Engine
	catchUpEngine *replica.Engine    // the catch-up pass in progress
	cancelWait    context.CancelFunc // interrupts Next
	cancelPass    context.CancelFunc // stops the pass in progress (promotion)
	reloadAsk     bool
	paused        bool
	state         string
	pass          passStatus
	inflight      map[uint32]inflightJob
	targets       map[string]*targetStatus
	lastJobID     uint32
	reloaded      *reloadStatus
}

func runDaemon(ctx context.Context, opt runOptions) (err error) {
	cfg, err := loadRunConfig(opt.conf)
	if err != nil {
		return err
	}
	uids, skipped, err := cfg.PluginUIDs()
	if err != nil {
		return err
	}
	d := &daemon{opt: opt, level: new(slog.LevelVar), rec: metrics.New(), start: time.Now(),
		wake: make(chan struct{}, 1), cfg: cfg, state: "starting", jobs: newJobTracker(), stopped: make(chan struct{}),
		inflight: map[uint32]inflightJob{}, targets: map[string]*targetStatus{}}
	d.level.Set(logLevel(cfg.LogLevel))
	d.logger = slog.New(slog.NewJSONHandler(opt.stderr, &slog.HandlerOptions{Level: d.level}))
	for _, u := range skipped {
		d.logger.Info("plugin_users: no such user, not allowed on the plugin socket", "user", u)
	}

	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return err
	}
	d.cat, err = replica.OpenCatalog(filepath.Join(cfg.StateDir, "catalog.db"))
	if err != nil {
		return err
	}
	defer d.cat.Close()
	d.catchup, err = openCatchUp(cfg.StateDir, cfg.RetryBackoff)
	if err != nil {
		return err
	}
	if err := d.catchup.SetTargets(targetNames(cfg)); err != nil {
		return err
	}
	d.engine, err = d.newEngine(ctx, cfg)
	if err != nil {
		return err
	}
	d.setTargets(cfg)
	d.rec.SetQueueSource(d.queues)

	// The data source.
	newStream := opt.newStream
	if newStream == nil {
		newStream = openSource
	}
	d.src, err = newStream(cfg, d.logger)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := d.src.Close(); cerr != nil {
			d.logger.Error("closing the data source", "err", cerr)
		}
	}()

	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, below
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The plugin socket.
	if err := os.MkdirAll(filepath.Dir(cfg.PluginSocket), 0o755); err != nil {
		return err
	}
	gid := -1
	if g, err := user.LookupGroup("bacula"); err == nil {
		if n, err := strconv.Atoi(g.Gid); err == nil {
			gid = n
		}
	}
	ln, err := sdevent.Listen(cfg.PluginSocket, uids, gid)
	if err != nil {
		return err
	}
	defer ln.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := ln.ServeRequests(ctx, d.pluginRequest, d.pluginRefused); err != nil {
			d.logger.Error("plugin socket", "err", err)
		}
	}()

	// Metrics and status.
	metricsAddr := ""
	if cfg.MetricsListen != "" {
		hl, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics_listen: %w", err)
		}
		metricsAddr = hl.Addr().String()
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", d.rec.Handler())
		mux.HandleFunc("GET /status", d.serveStatus)
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.logger.Error("metrics_listen", "err", err)
			}
		}()
		defer func() {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			srv.Shutdown(sctx)
		}()
	}

	// Failover.
	if cfg.Failover.Enabled() {
		d.fo, err = failover.New(failover.Options{
			Config: cfg.Failover, StateDir: cfg.StateDir, Runner: opt.runner, Logger: d.logger,
			Targets: targetNames(cfg), LastJobID: d.lastJob,
		})
		if err != nil {
			return err
		}
		d.fo.Subscribe(d.failoverNotice)
		d.setRole(d.fo.Role())
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.fo.Run(ctx)
		}()
	}

	if opt.reload != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-opt.reload:
					d.mu.Lock()
					d.reloadAsk = true
					d.mu.Unlock()
					d.logger.Info("SIGHUP: the configuration is reloaded between passes")
					d.interrupt()
				}
			}
		}()
	}

	d.logger.Info("replicad running", "pid", os.Getpid(), "config", opt.conf, "source", sourceName(cfg),
		"targets", targetNames(cfg), "plugin_socket", cfg.PluginSocket, "metrics", metricsAddr,
		"failover", cfg.Failover.Enabled(), "role", d.role())
	d.logBehind(targetNames(cfg))
	d.refreshLag(targetNames(cfg))
	if opt.ready != nil {
		opt.ready(metricsAddr)
	}
	d.loop(ctx)
	close(d.stopped) // job summaries still waited for answer now
	d.setState("stopping")
	d.logger.Info("replicad stopping")
	cancel()
	return nil
}

// loadRunConfig loads and checks a configuration for run.
func loadRunConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckRun(); err != nil {
		return nil, err
	}
	if cfg.RPOReportDir != "" {
		if err := checkReportParams(cfg); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

func logLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

func targetNames(cfg *config.Config) []string {
	var out []string
	for _, t := range cfg.Targets {
		out = append(out, t.Path)
	}
	return out
}

func sourceName(cfg *config.Config) string {
	if cfg.VolumeDir != "" {
		return "volume_dir " + cfg.VolumeDir
	}
	return "fifo_path " + cfg.FIFOPath
}

// newEngine builds the engine of a configuration: its targets, with the
// snapshot guards and the metrics as hooks.
func (d *daemon) newEngine(ctx context.Context, cfg *config.Config) (*replica.Engine, error) {
	dests, snap, err := buildTargets(ctx, cfg, d.cat, d.logger, d.rec.SnapshotEvent)
	if err != nil {
		return nil, err
	}
	hooks := replica.Hooks{
		BeforeJob: func(ctx context.Context, target string, job *bacularec.Job) error {
			d.rec.JobStarted(target)
			d.jobs.begin(job)
			d.mu.Lock()
			if ts := d.targets[target]; ts != nil {
				ts.Job = jobName(job)
			}
			d.mu.Unlock()
			if snap.BeforeJob != nil {
				return snap.BeforeJob(ctx, target, job)
			}
			return nil
		},
		AfterJob: func(ctx context.Context, target string, job *bacularec.Job, err error) {
			if snap.AfterJob != nil {
				snap.AfterJob(ctx, target, job, err)
			}
			done := err == nil && job.OK()
			d.rec.JobFinished(target, done)
			now := time.Now()
			d.mu.Lock()
			defer d.mu.Unlock()
			if ts := d.targets[target]; ts != nil {
				ts.Job = ""
				if done {
					ts.LastJobDone = &now
					ts.LastJob = jobName(job)
				}
				if err != nil {
					ts.LastError = err.Error()
					ts.LastErrorAt = &now
				}
			}
			if done && job.JobID > d.lastJobID {
				d.lastJobID = job.JobID
			}
		},
	}
	return &replica.Engine{
		Dests: dests,
		// A target behind receives nothing live: it is caught up in
		// order (catchup.go).
		Log:      d.catchup.HoldBack(trackingLog{JobLog: d.cat, t: d.jobs}),
		Retry:    replica.RetryPolicy{Attempts: cfg.RetryAttempts, Backoff: cfg.RetryBackoff},
		Hooks:    hooks,
		Logger:   d.logger,
		DeferDir: filepath.Join(cfg.StateDir, "spool"),
	}, nil
}

func jobName(j *bacularec.Job) string {
	if j.Job != "" {
		return j.Job
	}
	return "session " + j.Session.String()
}

// setTargets makes the status and metrics follow the targets of cfg; the
// time of the last job each completed comes from the catalog.
func (d *daemon) setTargets(cfg *config.Config) {
	names := targetNames(cfg)
	d.rec.SetTargets(names)
	d.mu.Lock()
	old := d.targets
	d.targets = map[string]*targetStatus{}
	for _, n := range names {
		if ts := old[n]; ts != nil {
			d.targets[n] = ts
		} else {
			d.targets[n] = &targetStatus{Name: n}
		}
	}
	d.mu.Unlock()
	for _, n := range names {
		var last time.Time
		var lastJob string
		var lastID uint32
		err := d.cat.Jobs(n, func(r replica.JobRecord) error {
			if r.Done && r.Status == "T" && r.End.After(last) {
				last, lastJob = r.End, r.Job
			}
			if r.Done {
				lastID = max(lastID, r.JobID)
			}
			return nil
		})
		if err != nil {
			d.logger.Error("reading the catalog", "target", n, "err", err)
			continue
		}
		if !last.IsZero() {
			d.rec.LastCompleted(n, last)
			d.mu.Lock()
			if ts := d.targets[n]; ts != nil && (ts.LastJobDone == nil || ts.LastJobDone.Before(last)) {
				ts.LastJobDone, ts.LastJob = &last, lastJob
			}
			d.lastJobID = max(d.lastJobID, lastID)
			d.mu.Unlock()
		}
	}
}

func (d *daemon) currentEngine() *replica.Engine {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.engine
}

// queues are the queues of the pass in progress, live or catch-up.
func (d *daemon) queues() []replica.QueueStat {
	d.mu.Lock()
	e := d.engine
	if d.catchUpEngine != nil {
		e = d.catchUpEngine
	}
	d.mu.Unlock()
	return e.Queues()
}

func (d *daemon) setState(s string) {
	d.mu.Lock()
	d.state = s
	d.mu.Unlock()
}

func (d *daemon) lastJob() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lastJobID == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(d.lastJobID), 10)
}

// interrupt wakes the loop: it stops waiting for data (Next) and looks at
// the role and at a reload.
func (d *daemon) interrupt() {
	d.mu.Lock()
	if d.cancelWait != nil {
		d.cancelWait()
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// loop runs passes until ctx ends.
//
// Stopping (ctx ends, on SIGTERM or SIGINT) while a pass runs: the engine
// stops reading at the next item; each target finishes the file it is
// writing with what is already queued for it (the Mirror puts the files it
// finished in place, under their final names, and leaves nothing torn nor
// temporary), then stops. The job is not recorded done in the catalog
// (JobLog), the pass is not committed, so at the next start Follow
// (volume_dir) reads again from the position of the last committed pass
// and the engine replays the unfinished job; with a snapshot_backend, the
// target is first rolled back to the snapshot taken before that job.
// Positions are persisted (Commit) only for passes that completed. A FIFO
// (fifo_path) has no position: what the pipe held is not read again, and
// the job stays recorded as not done on the targets.
//
// Catch-up passes (catchup.go) run between live passes, when one is due:
// waiting for data ends then, and after a catch-up pass the stream is
// asked again, so that live data waiting is replicated before the next
// catch-up pass.
func (d *daemon) loop(ctx context.Context) {
	cfg := d.config()
	backoff := max(cfg.RetryBackoff, time.Second)
	passes := 0
	for ctx.Err() == nil {
		d.applyReload(ctx)
		if d.isPaused() {
			d.setState("paused")
			d.waitWake(ctx, 0)
			continue
		}
		if wait, ok := d.catchUpWait(); ok && wait == 0 {
			d.runCatchUp(ctx)
			if ctx.Err() != nil {
				return
			}
		}
		d.setState("waiting")
		wctx, cancel := context.WithCancel(ctx)
		if wait, ok := d.catchUpWait(); ok {
			cancel()
			wctx, cancel = context.WithTimeout(ctx, wait)
		}
		d.mu.Lock()
		d.cancelWait = cancel
		d.mu.Unlock()
		if d.isPaused() || d.reloadPending() { // asked for before cancelWait was set
			cancel()
		}
		open, err := d.src.Next(wctx)
		d.mu.Lock()
		d.cancelWait = nil
		d.mu.Unlock()
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if wctx.Err() != nil {
				continue // interrupted: role change, reload, a catch-up due
			}
			d.logger.Error("data source", "err", err)
			d.waitWake(ctx, backoff)
			continue
		}
		// A pass is ready. Promoted meanwhile: hold it until demoted.
		for d.isPaused() && ctx.Err() == nil {
			d.setState("paused")
			d.waitWake(ctx, 0)
		}
		if ctx.Err() != nil {
			return
		}
		d.applyReload(ctx)
		passes++
		result := d.runPass(ctx, passes, open)
		if ctx.Err() != nil {
			return
		}
		if result != metrics.PassError {
			backoff = max(d.config().RetryBackoff, time.Second)
			continue
		}
		// Reading failed: do not spin.
		d.logger.Info("next pass delayed", "in", backoff.String())
		d.waitWake(ctx, backoff)
		backoff = min(2*backoff, 5*time.Minute)
	}
}

// waitWake waits for ctx, a wake-up, or timeout (0: none).
func (d *daemon) waitWake(ctx context.Context, timeout time.Duration) {
	var tc <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		tc = t.C
	}
	select {
	case <-ctx.Done():
	case <-d.wake:
	case <-tc:
	}
}

func (d *daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

func (d *daemon) isPaused() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.paused
}

func (d *daemon) reloadPending() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reloadAsk
}

// runPass replicates one pass and commits it when it was read whole.
func (d *daemon) runPass(ctx context.Context, n int, open func(context.Context) (*bacularec.Files, error)) string {
	start := time.Now()
	d.mu.Lock()
	e, cfg := d.engine, d.cfg
	d.state = "replicating"
	d.pass.Number, d.pass.Started = n, &start
	d.mu.Unlock()
	d.logger.Info("pass started", "pass", n)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.mu.Lock()
	d.cancelPass = cancel
	if d.paused {
		cancel()
	}
	d.mu.Unlock()
	d.jobs.passStarted()
	sum, err := e.Run(pctx, open)
	d.mu.Lock()
	d.cancelPass = nil
	d.mu.Unlock()
	// Even a pass cut short: the jobs it read whole are not read again
	// live, so a target that misses one must catch up.
	behind := sum != nil && d.afterPass(n, e, targetNames(cfg))
	dur := time.Since(start)
	result := metrics.PassCommitted
	switch {
	case err != nil && ctx.Err() != nil:
		result = metrics.PassError
		d.logger.Warn("stopped within a pass: not committed; the unfinished job is replayed at the next start", "pass", n)
	case err != nil && pctx.Err() != nil:
		result = metrics.PassError
		d.logger.Warn("promoted within a pass: replication stopped, not committed; the pass is read again after the failback", "pass", n)
	case err != nil:
		result = metrics.PassError
		d.logger.Error("pass failed: not committed", "pass", n, "err", err)
	default:
		// Read whole: the position is saved even when a target misses
		// jobs (the stream would not give them again anyway; the catalog
		// records them as not done on that target, and the catch-up
		// reads them again from the volumes).
		switch {
		case !passComplete(sum) && d.placer() != nil:
			result = metrics.PassIncomplete
			d.logger.Error("a target misses jobs of this pass after its retries (see the target lines); it is caught up from the volumes while they hold the jobs (catch_up and lost_jobs in /status)", "pass", n)
		case !passComplete(sum):
			result = metrics.PassIncomplete
			d.logger.Error("a target misses jobs of this pass after its retries (see the target lines); this source does not say where they lie: they are not replayed", "pass", n)
		case behind:
			result = metrics.PassIncomplete
		}
		if cerr := d.src.Commit(); cerr != nil {
			result = metrics.PassError
			d.logger.Error("committing the pass", "pass", n, "err", cerr)
		}
	}
	d.rec.Pass(sum, result, dur)
	d.refreshLag(targetNames(cfg))
	end := time.Now()
	d.mu.Lock()
	d.pass.Started = nil
	d.pass.LastEnded, d.pass.LastResult, d.pass.LastSeconds = &end, result, dur.Seconds()
	if sum != nil {
		d.pass.LastJobs, d.pass.LastFiles, d.pass.LastBytes = sum.Jobs, sum.Files, sum.Bytes
		for _, t := range sum.Targets {
			ts := d.targets[t.Name]
			if ts == nil {
				continue
			}
			ts.Files += t.Files
			ts.Bytes += t.Bytes
			ts.Failed += t.Failed
			ts.JobsBehind = t.JobsLeft
			if t.Err != "" {
				ts.LastError, ts.LastErrorAt = t.Err, &end
			}
		}
	}
	d.mu.Unlock()
	d.jobs.passEnded() // after the targets' jobs_behind: the job summaries read them
	if sum != nil {
		attrs := []any{"pass", n, "result", result, "seconds", dur.Seconds(), "jobs", sum.Jobs, "files", sum.Files, "bytes", sum.Bytes, "notices", sum.Notices}
		d.logger.Info("pass ended", attrs...)
		for _, t := range sum.Targets {
			lvl := slog.LevelInfo
			if !t.OK() {
				lvl = slog.LevelWarn
			}
			d.logger.Log(ctx, lvl, "target", "pass", n, "target", t.Name, "ok", t.OK(), "files", t.Files, "bytes", t.Bytes,
				"written", t.Written, "skipped", t.Skipped, "failed", t.Failed, "jobs_done", t.JobsDone,
				"jobs_left", t.JobsLeft, "attempts", t.Attempts, "lagged", t.Lagged, "err", t.Err)
		}
		d.rpoReport(ctx, cfg)
	}
	if d.opt.onPass != nil {
		d.opt.onPass(result, sum)
	}
	return result
}

// rpoReport writes the RPO/RTO report, with rpo_report_dir.
func (d *daemon) rpoReport(ctx context.Context, cfg *config.Config) {
	if cfg.RPOReportDir == "" || ctx.Err() != nil {
		return
	}
	var b bytes.Buffer
	if err := writeRPOReport(&b, d.cat, cfg); err != nil {
		d.logger.Error("rpo_report_dir", "err", err)
		return
	}
	d.logger.Info("rpo report", "report", strings.TrimSpace(b.String()))
}

// passComplete: every target holds every job of the pass (files that
// could not be replicated are counted apart).
func passComplete(sum *replica.Summary) bool {
	for _, t := range sum.Targets {
		if t.JobsLeft > 0 || t.Err != "" {
			return false
		}
	}
	return true
}

// applyReload loads the configuration again if SIGHUP asked for it. A
// configuration that does not load, or whose targets cannot be built, is
// logged and the one in force stays. Keys read only at start (the data
// source, the plugin socket, metrics_listen, state_dir, failover) keep
// their values until a restart; a change to them is logged.
func (d *daemon) applyReload(ctx context.Context) {
	d.mu.Lock()
	ask := d.reloadAsk
	d.reloadAsk = false
	old := d.cfg
	d.mu.Unlock()
	if !ask {
		return
	}
	now := time.Now()
	fail := func(err error) {
		d.logger.Error("reload: configuration refused, the previous one stays in force", "config", d.opt.conf, "err", err)
		d.mu.Lock()
		d.reloaded = &reloadStatus{Time: now, Error: err.Error()}
		d.mu.Unlock()
	}
	cfg, err := loadRunConfig(d.opt.conf)
	if err != nil {
		fail(err)
		return
	}
	if _, _, err := cfg.PluginUIDs(); err != nil {
		fail(err)
		return
	}
	var kept []string
	keep := func(key string, changed bool) {
		if changed {
			kept = append(kept, key)
		}
	}
	keep("volume_dir", cfg.VolumeDir != old.VolumeDir)
	keep("fifo_path", cfg.FIFOPath != old.FIFOPath)
	keep("fifo_copy_dir", cfg.FIFOCopyDir != old.FIFOCopyDir)
	keep("idle_secs", cfg.Idle != old.Idle)
	keep("plugin_socket", cfg.PluginSocket != old.PluginSocket)
	keep("plugin_users", strings.Join(cfg.PluginUsers, ",") != strings.Join(old.PluginUsers, ","))
	keep("metrics_listen", cfg.MetricsListen != old.MetricsListen)
	keep("state_dir", cfg.StateDir != old.StateDir)
	keep("failover", cfg.Failover != old.Failover)
	cfg.VolumeDir, cfg.FIFOPath, cfg.FIFOCopyDir, cfg.Idle = old.VolumeDir, old.FIFOPath, old.FIFOCopyDir, old.Idle
	cfg.PluginSocket, cfg.PluginUsers, cfg.MetricsListen = old.PluginSocket, old.PluginUsers, old.MetricsListen
	cfg.StateDir, cfg.Failover = old.StateDir, old.Failover
	e, err := d.newEngine(ctx, cfg)
	if err != nil {
		fail(err)
		return
	}
	d.mu.Lock()
	d.cfg, d.engine = cfg, e
	d.reloaded = &reloadStatus{Time: now, Ignored: kept}
	d.mu.Unlock()
	d.level.Set(logLevel(cfg.LogLevel))
	d.setTargets(cfg)
	if err := d.catchup.SetTargets(targetNames(cfg)); err != nil {
		d.logger.Error("catch-up: forgetting the targets removed", "err", err)
	}
	// The operator may have repaired a target: try its catch-up now.
	d.catchup.SetBackoff(max(cfg.RetryBackoff, time.Second))
	d.catchup.Retry()
	if len(kept) > 0 {
		d.logger.Warn("reload: these keys changed but take effect only at a restart", "keys", kept)
	}
	d.logger.Info("configuration reloaded", "config", d.opt.conf, "targets", targetNames(cfg))
}

// pluginEvent handles an event of the storage daemon plugin.
func (d *daemon) pluginEvent(p sdevent.Peer, ev sdevent.Event) {
	d.mu.Lock()
	switch ev.Type {
	case sdevent.JobStart:
		since := ev.Time
		if since.IsZero() {
			since = time.Now()
		}
		d.inflight[ev.JobID] = inflightJob{JobID: ev.JobID, Job: ev.Job, Since: since}
	case sdevent.JobEnd:
		delete(d.inflight, ev.JobID)
	}
	n := len(d.inflight)
	d.mu.Unlock()
	d.rec.PluginEvent(ev.Type, n)
	switch ev.Type {
	case sdevent.JobStart:
		d.logger.Info("job started", "job_id", ev.JobID, "job", ev.Job, "peer_uid", p.UID, "peer_pid", p.PID)
	case sdevent.JobEnd:
		d.logger.Info("job ended", "job_id", ev.JobID, "job", ev.Job, "peer_uid", p.UID, "peer_pid", p.PID)
		d.src.JobEnded(ev.JobID)
	default:
		d.logger.Debug("plugin event", "type", ev.Type, "info", ev.Info, "peer_uid", p.UID, "peer_pid", p.PID)
	}
}

func (d *daemon) pluginRefused(p sdevent.Peer, err error) {
	d.rec.PluginRefused()
	d.logger.Warn("plugin socket: peer refused", "uid", p.UID, "gid", p.GID, "pid", p.PID, "err", err)
}

// failoverNotice follows the failover controller: the role pauses and
// resumes replication.
func (d *daemon) failoverNotice(n failover.Notice) {
	d.rec.FailoverNotice(n)
	if n.Kind != failover.NoticeRoleChanged {
		return
	}
	d.setRole(n.Role)
	if n.Role == failover.RolePromoted {
		d.logger.Warn("failover: promoted, replication paused (the disaster-recovery copy is live)", "from", n.OldRole)
	} else {
		d.logger.Warn("failover: back to standby, replication resumes", "from", n.OldRole)
	}
	d.interrupt()
}

func (d *daemon) setRole(role failover.Role) {
	paused := role == failover.RolePromoted
	d.mu.Lock()
	d.paused = paused
	if paused && d.cancelPass != nil {
		d.cancelPass() // nothing more goes into the live copy
	}
	d.mu.Unlock()
	d.rec.SetRole(role, paused)
	if paused {
		d.logger.Info("replication paused while promoted")
	} else if d.catchup != nil {
		d.catchup.Retry() // a catch-up pass cut by the promotion
	}
}

func (d *daemon) role() failover.Role {
	if d.fo == nil {
		return failover.RoleStandby
	}
	return d.fo.Role()
}
