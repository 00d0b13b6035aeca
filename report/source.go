package report

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Compute and the writers return these, wrapped with
// fmt.Errorf("...: %w") where a name or a value helps; test with errors.Is.
// Errors returned by a Source are passed on wrapped, not replaced.
var (
	// ErrNilSource: Compute was given no Source.
	ErrNilSource = errors.New("report: nil source")
	// ErrParams: a Params field is out of range (see Params).
	ErrParams = errors.New("report: invalid parameters")
	// ErrTarget: a TargetInfo has no name, a name given twice, or a
	// negative bandwidth or pending count.
	ErrTarget = errors.New("report: invalid target")
	// ErrRecord: a FileRecord or JobRecord is malformed (empty path,
	// negative size or counts) or the byte total of a target overflows.
	ErrRecord = errors.New("report: invalid record")
	// ErrUnknownTarget: MemSource was asked for a target it does not hold.
	ErrUnknownTarget = errors.New("report: unknown target")
	// ErrNilReport: a writer was given no Report.
	ErrNilReport = errors.New("report: nil report")
	// ErrSchema: a writer was given a Report of another schema version;
	// writing it under this package's layout would mislabel it.
	ErrSchema = errors.New("report: unsupported schema version")
)

// Source is what a report is computed from: the replication catalog.
//
// Files and Jobs stream their records through fn so that a catalog of
// millions of files is never held in memory as records: Compute keeps one
// int64 per file of the target in hand and nothing else per file. Both
// must stop and return fn's error as soon as fn returns one (Compute
// relies on that only for speed: it remembers its own error). A target
// named by Targets that has no files or jobs yields none, without error.
//
// Compute does not keep the strings of a record after fn returns: it
// copies what it lists. A catalog may therefore hand out strings that
// alias storage valid only during the call (a bbolt read transaction).
type Source interface {
	// Targets lists every replication target once. Compute reports them
	// in name order whatever the order here.
	Targets() []TargetInfo
	// Files calls fn for every file on the target, each path once.
	Files(target string, fn func(FileRecord) error) error
	// Jobs calls fn for every replication job of the target, in any order.
	Jobs(target string, fn func(JobRecord) error) error
}

// State is a target's replication state as the catalog sees it.
type State string

// The states a catalog reports. Any other value is reported as given and,
// like failed and lagging, lists the target as needing attention: a state
// the report does not know is not a state it may call healthy.
const (
	StateOK      State = "ok"      // replicating and up to date with the jobs it was given
	StateFailed  State = "failed"  // the last attempt failed; see LastError
	StateLagging State = "lagging" // working but behind: jobs are waiting
)

// TargetInfo describes one replication target.
type TargetInfo struct {
	Name string // unique, not empty
	Root string // root directory of the replicated tree on the target
	// Bandwidth is the measured write (and so restore-read) rate of the
	// destination in bytes per second; 0 means unknown, which makes the
	// RTO estimate unknown rather than optimistic.
	Bandwidth   int64
	State       State
	LastError   string    // text of the last error, "" if none
	LastSuccess time.Time // end of the last successful job; zero if never
	PendingJobs int       // jobs waiting to be replicated to this target
}

// FileRecord is one file as replicated to a target.
type FileRecord struct {
	Path string // path on the target, not empty
	Size int64  // bytes, not negative
	// Replicated is when the target copy was last known current: the end
	// of the last job that wrote it or confirmed it unchanged. It is not
	// the file's mtime: an unchanged file replicated long ago is as fresh
	// as the last job that checked it, and the catalog must advance this
	// time for it, or the file will read as stale. Zero means the file was
	// never replicated successfully: it counts as an RPO breach.
	Replicated time.Time
	JobID      uint32 // Bacula JobId of the job that last replicated the file
}

// JobRecord is one replication job of a target (one Bacula job replayed
// onto it).
type JobRecord struct {
	JobID   uint32
	Name    string    // Bacula job name
	Level   string    // as the catalog has it: "F", "I", "D" or "Full", ...
	Start   time.Time // when replication of the job started
	End     time.Time // zero while the job runs
	Bytes   int64     // bytes written to the target
	Files   int64     // files written
	Skipped int64     // files skipped (excluded, unchanged, not decodable)
	Errors  int64     // files that failed
	Status  string    // as the catalog has it: "T", "E", "running", ...
}

// MemTarget is one target of a MemSource with all its records.
type MemTarget struct {
	Info  TargetInfo
	Files []FileRecord
	Jobs  []JobRecord
}

// MemSource is a Source held in memory, for tests, examples and small
// catalogs. Targets are looked up by Info.Name; with a name given twice
// Files and Jobs use the first and Compute reports ErrTarget.
type MemSource []MemTarget

// Targets returns the Info of every target, in slice order.
func (m MemSource) Targets() []TargetInfo {
	out := make([]TargetInfo, len(m))
	for i, t := range m {
		out[i] = t.Info
	}
	return out
}

// Files calls fn for each file of the named target in slice order and
// stops at fn's first error, which it returns. An unknown name is
// ErrUnknownTarget.
func (m MemSource) Files(target string, fn func(FileRecord) error) error {
	t, err := m.find(target)
	if err != nil {
		return err
	}
	for _, f := range t.Files {
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// Jobs calls fn for each job of the named target in slice order and stops
// at fn's first error, which it returns. An unknown name is
// ErrUnknownTarget.
func (m MemSource) Jobs(target string, fn func(JobRecord) error) error {
	t, err := m.find(target)
	if err != nil {
		return err
	}
	for _, j := range t.Jobs {
		if err := fn(j); err != nil {
			return err
		}
	}
	return nil
}

func (m MemSource) find(name string) (*MemTarget, error) {
	for i := range m {
		if m[i].Info.Name == name {
			return &m[i], nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownTarget, name)
}
