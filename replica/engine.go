package replica

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openbrc/brc/bacularec"
)

// Destination is a Target with the queue that decouples it from the
// reader and from the other targets.
type Destination struct {
	Name   string // unique; names the target in logs, the catalog and summaries
	Target Target
	// QueueBytes is how much of the stream may wait in memory for this
	// target (default 8 MiB: enough to keep a target busy; more only
	// makes the process bigger).
	QueueBytes int64
	// SpoolDir receives the backlog beyond QueueBytes (default: none, the
	// target is lagging as soon as its memory queue is full while another
	// target is not).
	SpoolDir string
	// SpoolBytes caps the spool (default 1 GiB). Beyond it the target is
	// lagging: it stops receiving the stream and its job is replayed from
	// the volumes once the pass is over.
	SpoolBytes int64
}

// JobLog remembers which jobs each target holds completely, so that a
// target that failed or lagged is replayed from the right job, and a
// second run over the same volumes sends nothing twice. Catalog
// implements it.
type JobLog interface {
	// Done reports whether target holds job completely.
	Done(target string, job *bacularec.Job) (bool, error)
	// Record stores the outcome of job on target: done (End returned nil
	// and the volumes held the job's end) or not, with its counts.
	Record(target string, job *bacularec.Job, r JobRecord) error
}

// JobRecord is the outcome of one job on one target.
type JobRecord struct {
	JobID    uint32
	Job      string
	Level    string
	Status   string // Bacula's JobStatus from the end label; "" if the volumes ended first
	Done     bool
	Start    time.Time
	End      time.Time
	Files    int64
	Bytes    int64
	Skipped  int64
	Errors   int64
	Error    string // why the target stopped, if it did
	Attempts int
}

// Hooks let other packages follow the engine (snapshots, reports,
// metrics). They are called from the target's goroutine; an error from
// BeforeJob stops the target for the job like a target failure.
type Hooks struct {
	// BeforeJob runs before the first Put of job on a target.
	BeforeJob func(ctx context.Context, target string, job *bacularec.Job) error
	// AfterJob runs after a job on a target: err is nil when the target
	// holds all of it (job.OK() tells whether Bacula ended it well).
	AfterJob func(ctx context.Context, target string, job *bacularec.Job, err error)
	// FileError is called for each file not replicated.
	FileError func(target string, fe *FileError)
}

// RetryPolicy says how often a failed target is retried within one Run.
type RetryPolicy struct {
	Attempts   int           // passes after the first (default 0: none)
	Backoff    time.Duration // before the first retry (default 1s), doubled each time
	MaxBackoff time.Duration // default 5m
}

// Engine replicates the jobs of Bacula volumes to several destinations at
// once. Each destination runs on its own goroutine behind its own queue, so
// a slow one does not slow the others, and a failing one fails alone.
type Engine struct {
	Dests  []Destination
	Log    JobLog // nil: every job is sent to every target
	Replay bool   // send jobs the JobLog says are done
	Retry  RetryPolicy
	Hooks  Hooks
	Logger *slog.Logger
	// Sleep waits between retries (default: a timer honouring ctx);
	// tests make time pass instantly.
	Sleep func(ctx context.Context, d time.Duration) error
	// SpillGrace is how long the reader waits for a full target before it
	// spills to its spool, when another target can go on meanwhile
	// (default 50ms; negative: no wait). Targets of similar speed take
	// turns being full, and spilling for that would only cost both. A
	// target for which the others have sat idle (their queues empty)
	// during a tenth of the pass so far gets no more grace: it is slower
	// than they are, and waiting for it would hold them to its speed.
	SpillGrace time.Duration
	// IdleFlush is how long a target's queue stays empty (the volumes
	// are being written more slowly than the target writes) before the
	// files it holds back for batching are put in place (see Batcher;
	// default 50ms, negative: never).
	IdleFlush time.Duration
	// DeferDir holds the items of concurrent jobs (interleaved in the
	// volumes) while the job before them is replicated (default
	// os.TempDir()).
	DeferDir string

	live liveQueues // the queues of the pass in progress, for Queues
}

// Source opens the volumes to replicate, from the start: the engine opens
// them again to replay a job for a target that failed or lagged.
type Source func(ctx context.Context) (*bacularec.Files, error)

// TargetSummary is what happened on one destination.
type TargetSummary struct {
	Name      string
	Files     int64 // file records sent and applied
	Bytes     int64 // content bytes sent
	Written   int64 // content bytes the target wrote (targets that count them)
	Skipped   int64 // unchanged files not rewritten (targets that count them)
	Failed    int64 // files not replicated
	FailedIDs []string
	JobsDone  int
	JobsLeft  int    // jobs not replicated completely (failed, lagging or cut short)
	Lagged    int    // passes in which the target lagged
	Attempts  int    // passes run for it
	Err       string // the last target failure, if any
	MaxSpool  int64  // largest spool reached, bytes
}

// OK reports whether the target holds everything sent to it.
func (s *TargetSummary) OK() bool { return s.Failed == 0 && s.JobsLeft == 0 && s.Err == "" }

// Summary is what Run did.
type Summary struct {
	Jobs    int
	Files   int64 // file records read
	Bytes   int64 // content bytes read
	Notices int   // reader problems that did not stop it
	Targets []*TargetSummary
}

// Failed reports whether a target failed or missed files.
func (s *Summary) Failed() bool {
	for _, t := range s.Targets {
		if !t.OK() {
			return true
		}
	}
	return false
}

const maxListedFailures = 100

func (e *Engine) idleFlush() time.Duration {
	if e.IdleFlush == 0 {
		return 50 * time.Millisecond
	}
	return e.IdleFlush
}

func (e *Engine) spillGrace() time.Duration {
	switch {
	case e.SpillGrace < 0:
		return 0
	case e.SpillGrace == 0:
		return 50 * time.Millisecond
	}
	return e.SpillGrace
}

// dest is the engine's state for one destination.
type dest struct {
	Destination
	idx int
	sum *TargetSummary
	q   *queue

	active bool // takes part in the next pass

	// Producer side, per pass.
	jobs    map[*bacularec.Job]bool // jobs it receives now
	meant   map[string]bool         // jobs it should have received
	cut     bool                    // no more messages in this pass
	lagged  bool
	waited  time.Duration // others sat idle while the reader waited for it (SpillGrace)
	pushErr error
	stopped atomic.Bool // set by the pump when the target failed

	// Pump side, per pass.
	completed map[string]bool
	pumpErr   error

	// After the pass.
	failed error
	left   map[string]bool
}

func (e *Engine) logger() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Run replicates everything open yields to the destinations, then closes
// the targets that are io.Closers. It returns an error only when reading
// the volumes fails or ctx ends; target failures are in the summary.
func (e *Engine) Run(ctx context.Context, open Source) (*Summary, error) {
	if len(e.Dests) == 0 {
		return nil, errors.New("replica: no targets")
	}
	ds := make([]*dest, len(e.Dests))
	sum := &Summary{}
	seen := map[string]bool{}
	for i, d := range e.Dests {
		if seen[d.Name] {
			return nil, fmt.Errorf("replica: two targets named %q", d.Name)
		}
		seen[d.Name] = true
		if d.QueueBytes <= 0 {
			d.QueueBytes = 8 << 20
		}
		if d.SpoolBytes <= 0 {
			d.SpoolBytes = 1 << 30
		}
		ds[i] = &dest{Destination: d, idx: i, sum: &TargetSummary{Name: d.Name}, active: true}
		sum.Targets = append(sum.Targets, ds[i].sum)
	}
	defer func() {
		for _, d := range ds {
			if c, ok := d.Target.(io.Closer); ok {
				if err := c.Close(); err != nil {
					e.logger().Error("closing target", "target", d.Name, "err", err)
					if d.sum.Err == "" {
						d.sum.Err = err.Error()
					}
				}
			}
		}
	}()
	backoff := e.Retry.Backoff
	if backoff <= 0 {
		backoff = time.Second
	}
	maxBackoff := e.Retry.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Minute
	}
	for pass := 0; ; pass++ {
		var run []*dest
		for _, d := range ds {
			if d.active {
				run = append(run, d)
			}
		}
		if err := e.pass(ctx, open, run, sum, pass == 0); err != nil {
			return sum, err
		}
		var again, failed bool
		for _, d := range run {
			d.sum.Attempts++
			d.active = false
			d.sum.JobsLeft = len(d.left)
			if d.lagged {
				d.sum.Lagged++
			}
			if d.failed != nil || d.lagged {
				d.active = true
				again = true
				failed = failed || d.failed != nil
			}
		}
		if !again || pass >= e.Retry.Attempts && !e.onlyLagging(run) {
			break
		}
		if pass > e.Retry.Attempts+8 {
			break // lagging again and again: leave it to the next run
		}
		if failed {
			e.logger().Info("retrying failed targets", "in", backoff)
			if err := e.sleep(ctx, backoff); err != nil {
				return sum, err
			}
			backoff = min(2*backoff, maxBackoff)
		}
	}
	return sum, nil
}

func (e *Engine) onlyLagging(run []*dest) bool {
	for _, d := range run {
		if d.failed != nil {
			return false
		}
	}
	return true
}

func (e *Engine) sleep(ctx context.Context, d time.Duration) error {
	if e.Sleep != nil {
		return e.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// pass reads the volumes once and feeds the destinations in run.
func (e *Engine) pass(ctx context.Context, open Source, run []*dest, sum *Summary, first bool) error {
	files, err := open(ctx)
	if err != nil {
		return err
	}
	defer files.Close()
	var wg sync.WaitGroup
	room := make(chan struct{}, 1)
	for _, d := range run {
		d.q = newQueue(d.QueueBytes, d.SpoolDir, d.SpoolBytes)
		d.q.room = room
		d.jobs, d.meant, d.completed = map[*bacularec.Job]bool{}, map[string]bool{}, map[string]bool{}
		d.cut, d.lagged, d.pushErr, d.pumpErr = false, false, nil, nil
		d.waited = 0
		d.stopped.Store(false)
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.pump(ctx, d)
		}()
	}
	e.live.set(run)
	defer e.live.set(nil)
	p := &producer{e: e, run: run, sum: sum, first: first, deferred: map[*bacularec.Job]*queue{}, start: time.Now(), room: room}
	err = p.read(ctx, files)
	for _, d := range run {
		d.q.close()
	}
	wg.Wait()
	for _, d := range run {
		d.sum.MaxSpool = max(d.sum.MaxSpool, d.q.maxSpool)
		if sr, ok := d.Target.(StatsReporter); ok {
			d.sum.Written = sr.Stats().Bytes
		}
		d.q.release()
		d.failed = cmp.Or(d.pumpErr, d.pushErr)
		d.left = map[string]bool{}
		for j := range d.meant {
			if !d.completed[j] {
				d.left[j] = true
			}
		}
		if d.failed != nil {
			d.sum.Err = d.failed.Error()
		} else if !d.lagged {
			d.sum.Err = ""
		}
	}
	for _, q := range p.deferred {
		q.release()
	}
	return err
}

// producer turns items into messages and hands them to the destinations,
// one job at a time.
type producer struct {
	e     *Engine
	run   []*dest
	sum   *Summary
	first bool

	cur      *bacularec.Job
	deferred map[*bacularec.Job]*queue
	order    []*bacularec.Job
	ended    map[*bacularec.Job]bool

	start time.Time     // of the pass
	room  chan struct{} // a token when a destination's queue made room
}

func (p *producer) read(ctx context.Context, files *bacularec.Files) error {
	p.ended = map[*bacularec.Job]bool{}
	digests := newDigestPipe(files)
	defer digests.close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		it, err := files.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		var m msg
		switch it.Kind {
		case bacularec.KindJobStart:
			m = msg{kind: mBegin, job: it.Job, label: clone(it.Job)}
			if p.first {
				p.sum.Jobs++
			}
		case bacularec.KindFile:
			m = msg{kind: mFile, job: it.File.Job, file: it.File}
			digests.begin(it.File)
			if p.first {
				p.sum.Files++
			}
		case bacularec.KindData:
			m = msg{kind: mData, job: it.File.Job, file: it.File, off: it.Offset, data: append([]byte(nil), it.Data...)}
			digests.data(it.File, m.data)
			if p.first {
				p.sum.Bytes += int64(len(it.Data))
			}
		case bacularec.KindFileEnd:
			m = msg{kind: mFileEnd, job: it.File.Job, file: it.File, digested: digests.end(it.File)}
		case bacularec.KindJobEnd:
			m = msg{kind: mJobEnd, job: it.Job, label: clone(it.Job)}
		case bacularec.KindNotice:
			if p.first {
				p.sum.Notices++
				p.e.logger().Warn("volume", "notice", it.Err)
			}
			continue
		default:
			continue
		}
		if err := p.route(ctx, m); err != nil {
			return err
		}
	}
	// Jobs still deferred (their end came while another job was current).
	for p.cur == nil && len(p.order) > 0 {
		if err := p.promote(ctx); err != nil {
			return err
		}
	}
	return nil
}

// route sends m now when it belongs to the current job, else defers it
// until the current job has ended: a Target receives one job at a time.
func (p *producer) route(ctx context.Context, m msg) error {
	if p.cur == nil {
		p.cur = m.job
	}
	if m.job != p.cur {
		q := p.deferred[m.job]
		if q == nil {
			dir := p.e.DeferDir
			if dir == "" {
				dir = os.TempDir()
			}
			q = newQueue(16<<20, dir, 1<<62)
			p.deferred[m.job] = q
			p.order = append(p.order, m.job)
		}
		if m.kind == mJobEnd {
			p.ended[m.job] = true
		}
		return q.push(m, orSpool)
	}
	if err := p.dispatch(ctx, m); err != nil {
		return err
	}
	if m.kind == mJobEnd {
		p.cur = nil
		for p.cur == nil && len(p.order) > 0 {
			if err := p.promote(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// promote makes the oldest deferred job current and sends what it
// gathered.
func (p *producer) promote(ctx context.Context) error {
	j := p.order[0]
	p.order = p.order[1:]
	q := p.deferred[j]
	delete(p.deferred, j)
	q.close()
	defer q.release()
	p.cur = j
	for {
		m, err := q.pop()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := p.dispatch(ctx, m); err != nil {
			return err
		}
	}
	if p.ended[j] {
		delete(p.ended, j)
		p.cur = nil
	}
	return nil
}

// dispatch hands m to every destination that receives its job. A
// destination whose queue and spool are full while another still has room
// is cut (lagging); when all are full, the reader waits for the first to
// make room.
func (p *producer) dispatch(ctx context.Context, m msg) error {
	if m.kind == mBegin {
		for _, d := range p.run {
			if d.cut {
				continue
			}
			send := true
			if p.e.Log != nil && !p.e.Replay {
				done, err := p.e.Log.Done(d.Name, m.job)
				if err != nil {
					return err
				}
				send = !done
			}
			if send {
				d.jobs[m.job] = true
				d.meant[jobName(m.job)] = true
			}
		}
	}
	var full []*dest
	room := false
	var budget time.Duration
	for _, d := range p.run {
		if !d.cut && d.stopped.Load() {
			p.cutDest(d, nil)
		}
		if d.cut || !d.jobs[m.job] {
			continue
		}
		err := d.q.push(m, memOnly)
		switch {
		case err == errQueueFull:
			full = append(full, d)
		case err != nil:
			p.cutDest(d, err)
		default:
			room = true
		}
	}
	// When every target is full, the reader waits for the first one to
	// make room, not for each in turn: waiting for a 1 MB/s target's
	// queue to drain would hold the others idle for seconds. The rest
	// are then full while another can go on, below.
	if !room && len(full) > 1 {
		var err error
		if full, err = p.waitFirst(ctx, m, full); err != nil {
			return err
		}
		room = len(full) > 0
	}
	// A target whose queue is full spills to its spool only when another
	// target can go on meanwhile: with none, spooling would cost the
	// reader for nothing, and it waits instead.
	for _, d := range full {
		if room {
			// A moment's grace first (SpillGrace), unless the others
			// have sat idle waiting for d for a tenth of the pass so
			// far: then it is slower than they are, not taking turns
			// with them, and waiting would hold them to its speed.
			// While they still have work queued, waiting costs them
			// nothing and is not counted: a target only slow to start
			// (its first directories) is not spilled for that.
			if budget == 0 {
				budget = time.Since(p.start) / 10
			}
			err := errQueueFull
			t0 := time.Now()
			for last := t0; err == errQueueFull && d.waited < budget && last.Sub(t0) < p.e.spillGrace(); {
				time.Sleep(time.Millisecond)
				now := time.Now()
				if p.starving(d, m.job) {
					d.waited += now.Sub(last)
				}
				last = now
				err = d.q.push(m, memOnly)
			}
			if err == errQueueFull {
				err = d.q.push(m, orSpool)
			}
			if err == errQueueFull {
				p.e.logger().Warn("target lagging: its queue and spool are full", "target", d.Name, "job", m.job.Job)
				d.lagged = true
				p.cutDest(d, nil)
			} else if err != nil {
				p.cutDest(d, err)
			}
			continue
		}
		if err := d.q.push(m, waitRoom); err != nil {
			p.cutDest(d, err)
		}
	}
	if m.kind == mJobEnd {
		for _, d := range p.run {
			delete(d.jobs, m.job)
		}
	}
	return ctx.Err()
}

// starving reports whether a destination other than d that receives job
// has nothing queued: the reader waiting for d holds it idle.
func (p *producer) starving(d *dest, job *bacularec.Job) bool {
	for _, o := range p.run {
		if o != d && !o.cut && o.jobs[job] && o.q.empty() {
			return true
		}
	}
	return false
}

// waitFirst waits until one of the full destinations takes m, and
// returns the others.
func (p *producer) waitFirst(ctx context.Context, m msg, full []*dest) ([]*dest, error) {
	// A token may be stale (room made before these queues were full):
	// each wake-up tries them all again. The timer is only a safety net:
	// room enough for m is always made with a token (see queue.made).
	t := time.NewTimer(0)
	defer t.Stop()
	for len(full) > 0 {
		for i := 0; i < len(full); i++ {
			d := full[i]
			err := d.q.push(m, memOnly)
			switch {
			case err == nil:
				return slices.Delete(full, i, i+1), nil
			case err != errQueueFull:
				p.cutDest(d, err)
				full = slices.Delete(full, i, i+1)
				i--
			}
		}
		t.Reset(10 * time.Millisecond)
		select {
		case <-p.room:
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, nil
}

// cutDest stops sending to d for the rest of the pass; its pump stops at
// the mCut marker.
func (p *producer) cutDest(d *dest, err error) {
	d.cut = true
	if err != nil && d.pushErr == nil {
		d.pushErr = fmt.Errorf("%w: %w", ErrTargetFailed, err)
	}
	d.q.push(msg{kind: mCut}, force)
}

// jobName identifies a job in logs and the JobLog: Bacula's unique job
// name, or the session when the start label was not read.
func jobName(j *bacularec.Job) string {
	if j.Job != "" {
		return j.Job
	}
	return "session " + j.Session.String()
}

func clone(j *bacularec.Job) *bacularec.Job {
	c := *j
	return &c
}
