package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/openbrc/brc/bacularec"
)

// A Target is a place the files of Bacula jobs are replicated to: a
// directory on a local disk, an NFS or SMB mount, a DR disk.
//
// The engine calls a Target from one goroutine at a time, job by job in
// backup order: Begin, then Put for each file record of the job, then End.
// A Target may keep state between jobs (directory metadata to apply, files
// to put in place, an index of what it holds); io.Closer, when it has it,
// is called once when replication stops.
//
// Errors: an error wrapping a *FileError concerns the files it names
// (hostile path, undecodable content ...); the engine records them and goes
// on. Any other error means the target cannot go on with the job (disk
// full, read-only, I/O error, mount gone); the engine stops sending the job
// to it and replays the job later. A Target must leave what it already
// holds usable in both cases: nothing half-written under a final name.
type Target interface {
	// Begin starts applying job (its start label: JobId, level, times).
	Begin(ctx context.Context, job *bacularec.Job) error

	// Put makes f.Path on the target what the backup says: a regular file
	// with the data content yields, a directory, a symbolic or hard link, a
	// special file, or, for a TypeDeleted record (accurate mode), nothing.
	// The file's ACLs, xattrs and digest (f.ACLs, f.Xattrs, f.Digest,
	// f.DigestErr) are complete once content has returned io.EOF; for
	// types without content, content returns io.EOF at once. A regular
	// file must never be visible under its name with partial content.
	Put(ctx context.Context, f *bacularec.File, content Content) error

	// End finishes job, whose end label says how it ended (job.Status;
	// job.Ended is false when the volumes stopped before its end). When End
	// returns nil, everything Put for the job is in place and, for targets
	// that can say so, on stable storage.
	End(ctx context.Context, job *bacularec.Job) error
}

// Content is the data of a regular file as the backup holds it: pieces in
// increasing offset order; what lies between pieces, or after the last one
// up to the file's size, is a hole (zeros).
type Content interface {
	// Next returns the next piece and its offset. p is valid until the
	// next call. At the end it returns io.EOF.
	Next() (off int64, p []byte, err error)
}

// Stats counts what a target did. Targets that keep counts implement
// StatsReporter; the engine adds them to its summary.
type Stats struct {
	Files   int64 // file records put (all types)
	Bytes   int64 // content bytes written
	Skipped int64 // regular files whose content the target already held
	Deleted int64 // paths removed
	Errors  int64 // files not replicated
}

// StatsReporter is implemented by targets that count what they do.
type StatsReporter interface {
	Stats() Stats
}

// Batcher is implemented by targets that hold finished files back, to
// put them in place in batches (one flush of the file system for many
// files). FlushPending puts what waits in place now; failures come out of
// the next Put or End. The engine calls it when the stream pauses (see
// Engine.IdleFlush), so that a file is not kept from view by a batch that
// fills slowly: between files, and also within a Put, while it waits in
// Content.Next (for the files finished before). Wrappers need not
// implement it: the engine finds it through Unwrap.
type Batcher interface {
	FlushPending()
}

// Unwrapper is implemented by wrapping targets (bandwidth limit, metrics,
// encryption) to give the target they wrap.
type Unwrapper interface {
	Unwrap() Target
}

// Errors. Test with errors.Is.
var (
	// ErrTargetFailed wraps an error that stops a target for the job.
	ErrTargetFailed = errors.New("replica: target failed")
	// ErrLagging: the target fell further behind than its spool allows;
	// its job is replayed from the volumes later.
	ErrLagging = errors.New("replica: target lagging")
	// ErrUnsafeDelete: delete_removed without a snapshot backend or the
	// explicit unsafe override.
	ErrUnsafeDelete = errors.New("replica: delete_removed needs a snapshot backend or delete_removed_unsafe")
	// ErrVerify: a file read back after writing did not match.
	ErrVerify = errors.New("replica: verification failed")
	// ErrUnsafePath: a path would leave the target's root (".." or NUL),
	// or crosses a symbolic link on the target.
	ErrUnsafePath = errors.New("replica: unsafe path")
	// ErrLinkTarget: the first name of a hard link is not on the target.
	ErrLinkTarget = errors.New("replica: hard link target not replicated")
	// ErrClosed: the target or engine was used after Close.
	ErrClosed = errors.New("replica: closed")
)

// FileError is a failure to replicate one file; the target goes on.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("replica: %s: %v", e.Path, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// FileErrors returns the *FileErrors err holds (it may join several), or
// nil when err is nil or concerns the whole target.
func FileErrors(err error) []*FileError {
	if err == nil {
		return nil
	}
	var out []*FileError
	var walk func(error) bool
	walk = func(e error) bool {
		if fe, ok := e.(*FileError); ok {
			out = append(out, fe)
			return true
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, c := range j.Unwrap() {
				if !walk(c) {
					return false
				}
			}
			return true
		}
		return false
	}
	if !walk(err) {
		return nil
	}
	return out
}

// IsTargetFailure reports whether err stops the target rather than
// concerning single files: see Target.
func IsTargetFailure(err error) bool {
	return err != nil && FileErrors(err) == nil
}

// fatalErrno lists what makes a file error a target failure: nothing more
// can be written there.
var fatalErrno = []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EIO,
	syscall.ENOTCONN, syscall.ESTALE, syscall.ENODEV, syscall.ENXIO, syscall.EMFILE, syscall.ENFILE}

func isFatalErrno(err error) bool {
	for _, e := range fatalErrno {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// drain consumes what is left of content, so a Target that decides early
// to ignore a file still leaves its ACLs and digest complete.
func drain(c Content) error {
	if c == nil {
		return nil
	}
	for {
		_, _, err := c.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Unwrap returns the innermost Target under any wrappers.
func Unwrap(t Target) Target {
	for {
		u, ok := t.(Unwrapper)
		if !ok {
			return t
		}
		t = u.Unwrap()
	}
}
