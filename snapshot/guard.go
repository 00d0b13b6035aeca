package snapshot

import (
	"context"
	"fmt"
	"sync"
)

// Guard protects one target root for one job: Before takes the snapshot,
// Done keeps or rolls back. It is what the replication engine uses.
type Guard struct {
	b    Backend
	root string
	keep int
	snap Snapshot

	mu   sync.Mutex
	done bool
}

// Before snapshots root before job jobID's first write and returns the
// Guard to call Done on when the job ends. keep is Config.Keep (0 means
// DefaultKeep). On error nothing was made, and the job should not write
// to the target, since a failure could not be undone. With the "none"
// backend it takes nothing and Done does nothing.
func Before(ctx context.Context, b Backend, root string, jobID uint32, keep int) (*Guard, error) {
	if keep <= 0 {
		keep = DefaultKeep
	}
	g := &Guard{b: b, root: root, keep: keep}
	if b.Kind() == None {
		return g, nil
	}
	s, err := b.Create(ctx, root, jobID)
	if err != nil {
		return nil, err
	}
	g.snap = s
	return g, nil
}

// Snapshot returns the snapshot taken by Before (the zero Snapshot with
// the "none" backend).
func (g *Guard) Snapshot() Snapshot { return g.snap }

// Done ends the job. ok: the snapshot is kept and the root's brc-pre
// snapshots are pruned to the newest keep; an error then is only about
// pruning, and the job's data stands. Not ok: the root is rolled back to
// the snapshot, which is then released (for lvm the merge consumes it).
//
// When the rollback itself fails, Done returns a *RollbackError
// (ErrRollback): the target may hold part of the job's writes, and the
// snapshot is kept for the operator, never deleted. Any other error after
// a failed job means the root was rolled back but the snapshot could not
// be released. A second call returns ErrGuardDone and does nothing.
//
// The engine must have closed its files in the root before calling Done
// with ok false: an lvm rollback unmounts the volume.
func (g *Guard) Done(ctx context.Context, ok bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return ErrGuardDone
	}
	g.done = true
	if g.b.Kind() == None {
		return nil
	}
	if ok {
		return Prune(ctx, g.b, g.root, g.keep)
	}
	if err := g.b.Rollback(ctx, g.snap); err != nil {
		return &RollbackError{Snapshot: g.snap, Err: err}
	}
	if g.snap.Kind == LVM { // merged into its origin: nothing left to release
		return nil
	}
	if err := g.b.Release(ctx, g.snap); err != nil {
		return fmt.Errorf("snapshot: %s rolled back, but releasing %s failed: %w", g.root, g.snap.Path, err)
	}
	return nil
}
