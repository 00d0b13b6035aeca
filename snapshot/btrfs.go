package snapshot

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// btrfs snapshots a target root that is a btrfs subvolume, into a
// snapshot directory on the same file system.
type btrfs struct {
	c   cmds
	dir string // snapshot_btrfs_dir, "" for the default beside root
	now func() time.Time
}

// rollbackSuffix names the writable copy of a snapshot that Rollback
// builds beside the root and swaps in; after the swap it holds the
// replaced tree until that is deleted. Either way it is disposable.
const rollbackSuffix = ".brc-rollback"

func (b *btrfs) Kind() Kind { return Btrfs }

// snapDir is where root's snapshots live.
func (b *btrfs) snapDir(root string) string {
	if b.dir != "" {
		return b.dir
	}
	return filepath.Join(filepath.Dir(root), ".brc-snapshots", filepath.Base(root))
}

// resolve checks that root is a btrfs subvolume that Rollback can swap:
// not a mount point, since a mount point cannot be renamed.
func (b *btrfs) resolve(ctx context.Context, root string) error {
	if err := checkRoot(root); err != nil {
		return err
	}
	m, err := b.c.findmnt(ctx, root)
	if err != nil {
		return err
	}
	if m.FSType != "btrfs" {
		return &NotOnVolumeError{Root: root, Kind: Btrfs, Found: m.String()}
	}
	if m.Target == root {
		return &NotOnVolumeError{Root: root, Kind: Btrfs, Found: "it is a mount point (" + m.String() +
			"); rollback renames the root, so it must be a subvolume inside a mounted btrfs file system, such as one made with btrfs subvolume create"}
	}
	if _, err := b.c.run(ctx, "btrfs", "subvolume", "show", root); err != nil {
		if exited(err) { // not a subvolume: the answer we asked for
			return &NotOnVolumeError{Root: root, Kind: Btrfs, Found: "a directory in the " + m.String() + " that is not a subvolume", Err: err}
		}
		return err
	}
	return nil
}

func (b *btrfs) Check(ctx context.Context, root string) error { return b.resolve(ctx, root) }

func (b *btrfs) Create(ctx context.Context, root string, jobID uint32) (Snapshot, error) {
	if err := b.resolve(ctx, root); err != nil {
		return Snapshot{}, err
	}
	dir := b.snapDir(root)
	// 0700: the snapshots hold the target's files, whatever their modes.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	name := Name(jobID)
	p := filepath.Join(dir, name)
	// Given an existing directory, btrfs would snapshot into it instead.
	if _, err := os.Lstat(p); err == nil {
		return Snapshot{}, fmt.Errorf("%w: %s", ErrExists, p)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	// Read-only, so that nothing changes what a rollback restores.
	if _, err := b.c.run(ctx, "btrfs", "subvolume", "snapshot", "-r", root, p); err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Kind: Btrfs, Name: name, Volume: root, Path: p, Root: root, JobID: jobID, Created: b.now()}, nil
}

// check refuses a Snapshot this backend could not have made.
func (b *btrfs) check(s Snapshot) error {
	if err := checkOurs(s, Btrfs); err != nil {
		return err
	}
	if err := checkRoot(s.Root); err != nil {
		return err
	}
	if s.Volume != s.Root || !filepath.IsAbs(s.Path) || filepath.Clean(s.Path) != s.Path || filepath.Base(s.Path) != s.Name {
		return fmt.Errorf("%w: %s of %s", ErrNotOurs, s.Path, s.Root)
	}
	return nil
}

// Rollback makes a writable snapshot of s beside the root (ROOT.brc-rollback),
// swaps it with the root in one atomic renameat2(RENAME_EXCHANGE), and
// deletes the replaced tree, now at ROOT.brc-rollback. The root path holds
// either the old or the restored tree at every moment. A process whose
// working directory or open files are inside the old root keeps them, and
// sees a deleted subvolume; it must reopen paths to see the restored tree.
// A leftover ROOT.brc-rollback (a rollback stopped half-way) is deleted
// first.
func (b *btrfs) Rollback(ctx context.Context, s Snapshot) error {
	if err := b.check(s); err != nil {
		return err
	}
	tmp := s.Root + rollbackSuffix
	if _, err := os.Lstat(tmp); err == nil {
		if _, err := b.c.run(ctx, "btrfs", "subvolume", "delete", tmp); err != nil {
			return fmt.Errorf("snapshot: removing the leftover %s: %w", tmp, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("snapshot: %w", err)
	}
	if _, err := b.c.run(ctx, "btrfs", "subvolume", "snapshot", s.Path, tmp); err != nil {
		return err
	}
	if err := exchange(tmp, s.Root); err != nil {
		_, derr := b.c.run(ctx, "btrfs", "subvolume", "delete", tmp)
		return errors.Join(fmt.Errorf("snapshot: %w", err), derr)
	}
	if _, err := b.c.run(ctx, "btrfs", "subvolume", "delete", tmp); err != nil {
		return fmt.Errorf("snapshot: %s rolled back to %s, but the replaced tree is left at %s: %w", s.Root, s.Path, tmp, err)
	}
	return nil
}

func (b *btrfs) Release(ctx context.Context, s Snapshot) error {
	if err := b.check(s); err != nil {
		return err
	}
	_, err := b.c.run(ctx, "btrfs", "subvolume", "delete", s.Path)
	return err
}

// List reads the snapshot directory and asks btrfs subvolume show for the
// creation time of each brc-pre entry. A missing directory means no
// snapshots yet.
func (b *btrfs) List(ctx context.Context, root string) ([]Snapshot, error) {
	if err := checkRoot(root); err != nil {
		return nil, err
	}
	dir := b.snapDir(root)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	var snaps []Snapshot
	for _, e := range ents {
		id, ok := parseName(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		out, err := b.c.run(ctx, "btrfs", "subvolume", "show", p)
		if err != nil {
			return nil, err
		}
		t, err := creationTime(out)
		if err != nil {
			return nil, fmt.Errorf("%w: btrfs subvolume show %s: %v", ErrToolOutput, p, err)
		}
		snaps = append(snaps, Snapshot{Kind: Btrfs, Name: e.Name(), Volume: root, Path: p, Root: root, JobID: id, Created: t})
	}
	sortSnapshots(snaps)
	return snaps, nil
}

// creationTime parses the "Creation time:" line of btrfs subvolume show.
func creationTime(out []byte) (time.Time, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Creation time:")
		if ok {
			return time.Parse("2006-01-02 15:04:05 -0700", strings.TrimSpace(v))
		}
	}
	return time.Time{}, errors.New(`no "Creation time:" line`)
}
