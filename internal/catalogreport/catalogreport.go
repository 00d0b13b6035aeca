// Package catalogreport presents the replication catalog (replica.Catalog)
// as a report.Source, so that report.Compute can judge what the catalog
// holds. It is wiring only, a mapping of types: it lives apart from both
// packages because report imports nothing of openbrc and replica must not
// import report.
//
// What the catalog gives and what the report makes of it:
//
//   - Files are the entries of the target's state index, one per regular
//     file, by backed-up path (the catalog's key; StripPrefix is not
//     applied), with their size, the JobId that wrote them last and the
//     time they were last written or rewritten. Their replication time is
//     the later of that and the end of the target's last job replicated
//     completely: a job done on a target (Full, Incremental or
//     Differential, applied in order) leaves every file there current as
//     of that job, written by it or not. The index exists only when the Mirror is given
//     one (replicad does so with skip_unchanged or rpo_report_dir), and
//     holds only the files replicated since: a file that never reached
//     the target is not in it, so the report cannot count it as never
//     replicated; the job records count it in their errors.
//   - Jobs are the catalog's job records, one per job and target (the
//     latest attempt; a job once done stays done).
//   - A target's state, last error, last success and pending jobs come
//     from its job records, as described at Source.
//   - Its bandwidth is estimated from its job records, as follows.
//
// # Bandwidth estimate
//
// A target's bandwidth, in bytes per second, is the content bytes that
// its sample jobs delivered to it over the wall time they took, both
// summed (so each job weighs by its duration), rounded down: at least 1
// when there is a sample, 0 (unknown, so the RTO verdict is unknown) when
// there is none. A job record is a sample when it delivered at least
// Options.MinSampleBytes (1 MiB by default) and ended after it started.
// Small jobs are left out because their time is mostly per-job and
// per-file overhead (fsync, renames, waiting for the volumes to reach the
// job's files), which says nothing about bandwidth and would drag the
// estimate down.
//
// The estimate errs low, towards an RTO breach: a job's time includes
// reading and decoding the volumes, comparing unchanged files (their bytes
// count as delivered although not written), verifying, and any bwlimit,
// so it is the rate the target was fed at, which is at most the rate it
// can be read back at. It is the write rate standing in for the restore
// read rate, as report.TargetInfo defines Bandwidth. Only the latest
// attempt of each job is in the catalog.
package catalogreport

import (
	"cmp"
	"fmt"
	"math"
	"time"

	"github.com/openbrc/brc/replica"
	"github.com/openbrc/brc/report"
)

// Catalog is what Source reads: *replica.Catalog, or anything giving the
// same records.
type Catalog interface {
	Jobs(target string, fn func(replica.JobRecord) error) error
	Files(target string, fn func(path string, e *replica.IndexEntry) error) error
}

// Target is a configured replication target: the name it has in the
// catalog (replicad uses its root path) and its root directory.
type Target struct {
	Name string
	Root string
}

// DefaultMinSampleBytes is the default Options.MinSampleBytes: 1 MiB.
const DefaultMinSampleBytes = 1 << 20

// StatusIncomplete is the job status reported for a job record without a
// Bacula status: the attempt ended before the volumes gave the job's end
// label (cut short, lagging, failed, or a job continued on a later
// volume).
const StatusIncomplete = "incomplete"

// Options tune a Source.
type Options struct {
	// MinSampleBytes is how many content bytes a job must have delivered
	// to a target to count in its bandwidth estimate (0: the default,
	// DefaultMinSampleBytes; negative: every job with bytes).
	MinSampleBytes int64
}

// Source is a report.Source over a Catalog, for the configured targets
// (targets in the catalog that are not configured any more are left out).
//
// New reads the job records once to describe the targets:
//
//   - PendingJobs counts the job records not done: jobs sent to the
//     target and not held by it completely. Jobs the target never saw
//     (it was added after them) are unknown to the catalog and not
//     counted.
//   - State is failed when the latest job record (latest start, the
//     higher JobId on a tie) is not done and has an error other than
//     lagging; else lagging when any job is pending; else ok.
//   - LastError is the error of the latest job record not done that has
//     one ("" if none).
//   - LastSuccess is the latest end of a job record that is done.
//   - Bandwidth is estimated as the package comment says.
//
// Files and Jobs then read the catalog at each call, each in one read
// transaction.
type Source struct {
	cat         Catalog
	targets     []report.TargetInfo
	lastSuccess map[string]time.Time // per target
}

// New describes targets from cat's job records. An error is a catalog
// read error.
func New(cat Catalog, targets []Target, opt Options) (*Source, error) {
	minBytes := opt.MinSampleBytes
	switch {
	case minBytes == 0:
		minBytes = DefaultMinSampleBytes
	case minBytes < 0:
		minBytes = 1
	}
	s := &Source{cat: cat, lastSuccess: map[string]time.Time{}}
	for _, t := range targets {
		info := report.TargetInfo{Name: t.Name, Root: t.Root, State: report.StateOK}
		var (
			last, lastErr replica.JobRecord
			haveLast      bool
			sampleBytes   float64
			sampleSeconds float64
			haveLastErr   bool
		)
		err := cat.Jobs(t.Name, func(r replica.JobRecord) error {
			if !haveLast || later(r, last) {
				last, haveLast = r, true
			}
			if r.Done {
				if r.End.After(info.LastSuccess) {
					info.LastSuccess = r.End
				}
			} else {
				info.PendingJobs++
				if r.Error != "" && (!haveLastErr || later(r, lastErr)) {
					lastErr, haveLastErr = r, true
				}
			}
			if d := r.End.Sub(r.Start); d > 0 && r.Bytes >= minBytes {
				sampleBytes += float64(r.Bytes)
				sampleSeconds += d.Seconds()
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("catalogreport: target %q: %w", t.Name, err)
		}
		info.LastError = lastErr.Error
		switch {
		case haveLast && !last.Done && last.Error != "" && last.Error != replica.ErrLagging.Error():
			info.State = report.StateFailed
		case info.PendingJobs > 0:
			info.State = report.StateLagging
		}
		info.Bandwidth = bandwidth(sampleBytes, sampleSeconds)
		s.targets = append(s.targets, info)
		s.lastSuccess[t.Name] = info.LastSuccess
	}
	return s, nil
}

// bandwidth is the estimate (see the package comment) from the sample
// totals.
func bandwidth(bytes, seconds float64) int64 {
	if bytes <= 0 || seconds <= 0 {
		return 0
	}
	bw := math.Floor(bytes / seconds)
	switch {
	case bw < 1:
		return 1
	case bw >= math.MaxInt64:
		return math.MaxInt64
	}
	return int64(bw)
}

// later reports whether a started after b, the higher JobId on a tie.
func later(a, b replica.JobRecord) bool {
	if c := a.Start.Compare(b.Start); c != 0 {
		return c > 0
	}
	return cmp.Compare(a.JobID, b.JobID) > 0
}

// Targets implements report.Source: the configured targets, as New
// described them.
func (s *Source) Targets() []report.TargetInfo { return s.targets }

// Files implements report.Source: the index entries of target. An entry
// without a time (0) is a file never replicated.
func (s *Source) Files(target string, fn func(report.FileRecord) error) error {
	return s.cat.Files(target, func(path string, e *replica.IndexEntry) error {
		f := report.FileRecord{Path: path, Size: e.Size, JobID: e.JobID}
		if e.Time > 0 {
			f.Replicated = time.Unix(e.Time, 0)
			if ls := s.lastSuccess[target]; ls.After(f.Replicated) {
				f.Replicated = ls
			}
		}
		return fn(f)
	})
}

// Jobs implements report.Source: the job records of target. A record
// without a Bacula status has status StatusIncomplete.
func (s *Source) Jobs(target string, fn func(report.JobRecord) error) error {
	return s.cat.Jobs(target, func(r replica.JobRecord) error {
		return fn(report.JobRecord{
			JobID: r.JobID, Name: r.Job, Level: r.Level,
			Start: r.Start, End: r.End,
			Bytes: r.Bytes, Files: r.Files, Skipped: r.Skipped, Errors: r.Errors,
			Status: cmp.Or(r.Status, StatusIncomplete),
		})
	})
}

var _ report.Source = (*Source)(nil)
