package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/openbrc/brc/bacularec"
)

// pump drives d's Target from its queue until the queue is closed.
func (e *Engine) pump(ctx context.Context, d *dest) {
	log := e.logger().With("target", d.Name)
	var (
		job     *bacularec.Job
		rec     JobRecord
		before  Stats
		stopped bool
	)
	stats := func() Stats {
		if sr, ok := d.Target.(StatsReporter); ok {
			return sr.Stats()
		}
		return Stats{}
	}
	finishJob := func(err error) {
		if job == nil {
			return
		}
		after := stats()
		rec.Skipped = after.Skipped - before.Skipped
		rec.End = time.Now()
		if err != nil {
			rec.Error = err.Error()
		}
		rec.Done = err == nil && job.Ended
		if rec.Done {
			d.completed[jobName(job)] = true
			d.sum.JobsDone++
		}
		if job.Ended {
			rec.Status = string(job.Status)
		}
		d.sum.Skipped += rec.Skipped
		if e.Log != nil {
			if lerr := e.Log.Record(d.Name, job, rec); lerr != nil {
				log.Error("recording job", "job", jobName(job), "err", lerr)
			}
		}
		if e.Hooks.AfterJob != nil {
			e.Hooks.AfterJob(ctx, d.Name, job, err)
		}
		job = nil
	}
	fail := func(err error) {
		if !errors.Is(err, ErrTargetFailed) {
			err = fmt.Errorf("%w: %w", ErrTargetFailed, err)
		}
		log.Error("target failed", "job", jobName(job), "err", err)
		d.pumpErr = err
		d.stopped.Store(true)
		stopped = true
		finishJob(err)
	}
	fileErrs := func(err error) bool {
		fes := FileErrors(err)
		if fes == nil {
			return false
		}
		for _, fe := range fes {
			d.sum.Failed++
			rec.Errors++
			if len(d.sum.FailedIDs) < maxListedFailures {
				d.sum.FailedIDs = append(d.sum.FailedIDs, fe.Path)
			}
			log.Warn("file not replicated", "path", fe.Path, "err", fe.Err)
			if e.Hooks.FileError != nil {
				e.Hooks.FileError(d.Name, fe)
			}
		}
		return true
	}
	// A target that batches is told to put what it holds in place when
	// the stream pauses, between files and within one.
	idle := e.idleFlush()
	var flush func()
	if b, ok := findInner[Batcher](d.Target); ok && idle > 0 {
		flush = b.FlushPending
	}
	for {
		var m msg
		var err error
		if job != nil && !stopped {
			m, err = d.q.popIdle(idle, flush)
		} else {
			m, err = d.q.pop()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if !stopped {
				fail(err)
			}
			continue
		}
		if stopped {
			continue
		}
		switch m.kind {
		case mBegin:
			// A copy of its own: the end label is copied in at mJobEnd,
			// and other targets read the shared one meanwhile.
			job = clone(m.label)
			rec = JobRecord{JobID: job.JobID, Job: jobName(job), Level: string(job.Level), Start: time.Now()}
			before = stats()
			if e.Hooks.BeforeJob != nil {
				if err := e.Hooks.BeforeJob(ctx, d.Name, job); err != nil {
					fail(err)
					continue
				}
			}
			if err := d.Target.Begin(ctx, job); err != nil {
				fail(err)
			}
		case mFile:
			c := &content{q: d.q, f: m.file, private: m.spooled, idle: idle, flush: flush}
			err := d.Target.Put(ctx, m.file, c)
			if err == nil {
				err = c.finish()
			} else {
				c.finish()
			}
			d.sum.Bytes += c.n
			rec.Bytes += c.n
			switch {
			case c.cut:
				stopped = true
				finishJob(ErrLagging)
			case err == nil:
				d.sum.Files++
				rec.Files++
			case fileErrs(err):
			default:
				fail(err)
			}
		case mJobEnd:
			if job == nil {
				continue
			}
			*job = *m.label // the end label's fields
			err := d.Target.End(ctx, job)
			if err != nil && !fileErrs(err) {
				fail(err)
				continue
			}
			finishJob(nil)
		case mCut:
			stopped = true
			finishJob(ErrLagging)
		}
	}
	if job != nil {
		finishJob(errors.New("replica: volumes ended within the job"))
	}
}

// content feeds a Put from the queue, up to the file's mFileEnd.
type content struct {
	q       *queue
	f       *bacularec.File
	private bool // f is this target's copy (from the spool)
	idle    time.Duration
	flush   func() // Batcher.FlushPending, when the stream pauses
	n       int64
	done    bool
	cut     bool
	err     error
}

func (c *content) Next() (int64, []byte, error) {
	if c.done {
		return 0, nil, io.EOF
	}
	if c.err != nil {
		return 0, nil, c.err
	}
	for {
		m, err := c.q.popIdle(c.idle, c.flush)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			c.err = err
			return 0, nil, err
		}
		switch m.kind {
		case mData:
			c.n += int64(len(m.data))
			return m.off, m.data, nil
		case mFileEnd:
			if m.digested != nil {
				<-m.digested
			}
			if c.private && m.file != c.f {
				// f was read back from the spool before the reader
				// completed it: take the ACLs, xattrs and digest now.
				// (A shared f is complete once mFileEnd is queued.)
				c.f.ACLs, c.f.Xattrs = m.file.ACLs, m.file.Xattrs
				c.f.Digest, c.f.DigestErr, c.f.DigestChecked = m.file.Digest, m.file.DigestErr, m.file.DigestChecked
				c.f.NotDecoded, c.f.Incomplete, c.f.Written = m.file.NotDecoded, m.file.Incomplete, m.file.Written
			}
			c.done = true
			return 0, nil, io.EOF
		case mCut:
			c.cut = true
			c.err = ErrLagging
			return 0, nil, ErrLagging
		}
	}
}

// finish reads what Put left of the file, so the next message is the next
// file's.
func (c *content) finish() error {
	for !c.done && c.err == nil {
		c.Next()
	}
	if c.done {
		return nil
	}
	return c.err
}
