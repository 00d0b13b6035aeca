package snapshot

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/openbrc/brc/internal/run"
)

// Sentinel errors. Errors returned by this package wrap one of these (test
// with errors.Is), usually inside a typed error that says where.
var (
	// ErrUnknownBackend: snapshot_backend names no backend.
	ErrUnknownBackend = errors.New("snapshot: unknown snapshot_backend")
	// ErrConfig: a Config that Validate refuses.
	ErrConfig = errors.New("snapshot: invalid configuration")
	// ErrNotOnVolume: the target root is not on a volume of the configured
	// kind, or not on the one the configuration names. A configuration
	// error, wrapped in a *NotOnVolumeError that says what was found.
	ErrNotOnVolume = errors.New("snapshot: target is not on a volume of the configured kind")
	// ErrBadRoot: a target root that is not an absolute, clean path.
	ErrBadRoot = errors.New("snapshot: target root must be an absolute, clean path")
	// ErrDisabled: Create, Rollback or Release on the "none" backend.
	ErrDisabled = errors.New("snapshot: snapshots are disabled (snapshot_backend=none)")
	// ErrNotOurs: a Snapshot that this backend did not make: another kind,
	// or a name that is not brc-pre-<jobid>. Refused before any command
	// runs, so a corrupted Snapshot can never destroy something else.
	ErrNotOurs = errors.New("snapshot: not a brc-pre snapshot of this backend")
	// ErrExists: btrfs Create of a name that exists (lvm and zfs refuse
	// with their own words, in a *CommandError).
	ErrExists = errors.New("snapshot: a snapshot of that name exists")
	// ErrTimeout: a command outlived Config.Timeout and was stopped.
	ErrTimeout = errors.New("snapshot: command timed out")
	// ErrToolOutput: a tool printed something this package cannot parse.
	ErrToolOutput = errors.New("snapshot: unexpected tool output")
	// ErrMergePending: an lvm merge was scheduled but could not start
	// because the origin is still open; it completes on the next
	// activation of the origin LV (see the package documentation).
	ErrMergePending = errors.New("snapshot: lvm merge pending until the origin volume is reactivated")
	// ErrRollback: Guard.Done could not roll a failed job back. The
	// snapshot is kept for the operator and never deleted.
	ErrRollback = errors.New("snapshot: rollback failed, snapshot kept")
	// ErrGuardDone: Guard.Done called a second time.
	ErrGuardDone = errors.New("snapshot: guard already done")
)

// Kind is a snapshot backend: the value of snapshot_backend.
type Kind string

// The backends.
const (
	None  Kind = "none"
	LVM   Kind = "lvm"
	ZFS   Kind = "zfs"
	Btrfs Kind = "btrfs"
)

// Prefix starts the name of every snapshot this package makes; Name gives
// the whole name. Only names of that exact form are ever listed, pruned or
// removed, so snapshots made by people or other tools are left alone.
const Prefix = "brc-pre-"

// Name returns the snapshot name for a job: "brc-pre-<jobid>".
func Name(jobID uint32) string { return Prefix + strconv.FormatUint(uint64(jobID), 10) }

// parseName returns the job id of a name made by Name, and false for any
// other name (including "brc-pre-042", which Name never makes).
func parseName(name string) (uint32, bool) {
	s, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(s, 10, 32)
	if err != nil || strconv.FormatUint(id, 10) != s {
		return 0, false
	}
	return uint32(id), true
}

// Snapshot is one snapshot of a target root, as made by Create or found by
// List. It is a plain value: log it, keep it, pass it back to Rollback or
// Release of the backend that made it.
type Snapshot struct {
	Kind Kind
	Name string // brc-pre-<jobid>
	// Volume identifies what was snapshotted: "vg/lv" (lvm), the dataset
	// (zfs), the subvolume path, equal to Root (btrfs).
	Volume string
	// Path identifies the snapshot itself: "vg/brc-pre-42" (lvm),
	// "dataset@brc-pre-42" (zfs), "<snapdir>/brc-pre-42" (btrfs).
	Path    string
	Root    string // the target root it protects
	JobID   uint32
	Created time.Time // Config.Now at Create; the tool's creation time from List
}

// String names the snapshot for logs.
func (s Snapshot) String() string { return fmt.Sprintf("%s snapshot %s of %s", s.Kind, s.Path, s.Root) }

// Backend takes, restores and removes snapshots of target roots on one kind
// of volume. The lvm, zfs and btrfs backends keep no state between calls
// (each call finds the volume again, so it is never stale) and are safe
// for concurrent use on different roots; calls on one root must not
// overlap, as one job at a time replicates to a target.
type Backend interface {
	// Kind returns the backend's kind.
	Kind() Kind
	// Check verifies, at start, that root is on a volume of the backend's
	// kind (and on the one the configuration names, if it names one),
	// finding the LV, dataset or subvolume. A root that is not fails with
	// a *NotOnVolumeError (ErrNotOnVolume) saying what was found.
	Check(ctx context.Context, root string) error
	// Create snapshots root's volume before job jobID's first write, as
	// Name(jobID). It fails if a snapshot of that name exists; the
	// caller Releases it (or keeps it, for the operator) first.
	Create(ctx context.Context, root string, jobID uint32) (Snapshot, error)
	// Rollback puts root's volume back as it was when s was made. The
	// btrfs and zfs snapshots remain after it (Release them); the lvm
	// merge consumes the snapshot, so it must not be Released after a
	// successful Rollback.
	Rollback(ctx context.Context, s Snapshot) error
	// Release deletes the snapshot.
	Release(ctx context.Context, s Snapshot) error
	// List returns the snapshots of root made by this package (named
	// brc-pre-<jobid>), oldest first.
	List(ctx context.Context, root string) ([]Snapshot, error)
}

// New returns the backend that cfg.Backend names, running its commands
// through r (run.Exec{} in production). It validates cfg and applies its
// defaults. It runs nothing: call Check at start.
func New(cfg Config, r run.Runner) (Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := cmds{r: r, timeout: cfg.Timeout}
	switch cfg.Backend {
	case LVM:
		return &lvm{c: c, lv: cfg.LVMLV, size: cfg.LVMSize, now: cfg.Now}, nil
	case ZFS:
		return &zfs{c: c, dataset: cfg.ZFSDataset, now: cfg.Now}, nil
	case Btrfs:
		return &btrfs{c: c, dir: cfg.BtrfsDir, now: cfg.Now}, nil
	default: // None; Validate refused the rest
		return none{}, nil
	}
}

// Prune keeps the keep newest snapshots of root made by this package and
// releases the others, oldest first, by creation time (then job id). It
// stops at the first failure, so a snapshot is never removed while an
// older one remains. keep 0 removes them all.
func Prune(ctx context.Context, b Backend, root string, keep int) error {
	if keep < 0 {
		return fmt.Errorf("%w: keep %d < 0", ErrConfig, keep)
	}
	snaps, err := b.List(ctx, root)
	if err != nil {
		return err
	}
	sortSnapshots(snaps)
	for len(snaps) > keep {
		if err := b.Release(ctx, snaps[0]); err != nil {
			return err
		}
		snaps = snaps[1:]
	}
	return nil
}

// sortSnapshots orders oldest first. Creation times have a resolution of a
// second, so job ids, which Bacula hands out in increasing order, break ties.
func sortSnapshots(s []Snapshot) {
	sort.SliceStable(s, func(i, j int) bool {
		if !s[i].Created.Equal(s[j].Created) {
			return s[i].Created.Before(s[j].Created)
		}
		return s[i].JobID < s[j].JobID
	})
}

// checkRoot refuses relative or unclean roots: the btrfs backend derives
// paths from root, and every backend compares it with mount points.
func checkRoot(root string) error {
	if !filepath.IsAbs(root) || filepath.Clean(root) != root {
		return fmt.Errorf("%w: %q", ErrBadRoot, root)
	}
	return nil
}

// checkOurs refuses a Snapshot of another kind or with a name this package
// does not make, before anything is run with it.
func checkOurs(s Snapshot, k Kind) error {
	if s.Kind != k {
		return fmt.Errorf("%w: %s is a %q snapshot, backend is %s", ErrNotOurs, s.Path, s.Kind, k)
	}
	if id, ok := parseName(s.Name); !ok || id != s.JobID {
		return fmt.Errorf("%w: name %q, job %d", ErrNotOurs, s.Name, s.JobID)
	}
	return nil
}

// NotOnVolumeError reports a target root that is not on a volume of the
// configured kind: a configuration error to show the operator as is.
type NotOnVolumeError struct {
	Root  string
	Kind  Kind
	Found string // what the root is on, in words
	Err   error  // the failed query (a *CommandError), or nil
}

// Error says what the root was expected on and what it is on.
func (e *NotOnVolumeError) Error() string {
	msg := fmt.Sprintf("snapshot: %s is not on %s: %s", e.Root, kindWords[e.Kind], e.Found)
	if e.Err != nil {
		msg += " (" + e.Err.Error() + ")"
	}
	return msg
}

// Unwrap returns ErrNotOnVolume and the failed query, if any.
func (e *NotOnVolumeError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrNotOnVolume}
	}
	return []error{ErrNotOnVolume, e.Err}
}

var kindWords = map[Kind]string{
	LVM:   "an LVM logical volume",
	ZFS:   "a ZFS dataset",
	Btrfs: "a btrfs subvolume",
	None:  "any volume",
}

// RollbackError is Guard.Done's error when the rollback of a failed job
// failed: the target may hold part of the job's writes, and the snapshot
// (still there, or for lvm possibly merging) is kept for the operator.
type RollbackError struct {
	Snapshot Snapshot
	Err      error
}

// Error names the root, the snapshot kept and the cause.
func (e *RollbackError) Error() string {
	return fmt.Sprintf("snapshot: rollback of %s to %s failed; the snapshot is kept for the operator: %v",
		e.Snapshot.Root, e.Snapshot.Path, e.Err)
}

// Unwrap returns ErrRollback and the cause.
func (e *RollbackError) Unwrap() []error { return []error{ErrRollback, e.Err} }

// none is the "none" backend: no snapshots, nothing to roll back.
type none struct{}

func (none) Kind() Kind                                       { return None }
func (none) Check(context.Context, string) error              { return nil }
func (none) Rollback(context.Context, Snapshot) error         { return ErrDisabled }
func (none) Release(context.Context, Snapshot) error          { return ErrDisabled }
func (none) List(context.Context, string) ([]Snapshot, error) { return nil, nil }
func (none) Create(context.Context, string, uint32) (Snapshot, error) {
	return Snapshot{}, ErrDisabled
}
