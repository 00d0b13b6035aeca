package snapshot

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// zfs snapshots the dataset a target root is mounted from.
type zfs struct {
	c       cmds
	dataset string // snapshot_zfs_dataset, "" to take the dataset found
	now     func() time.Time
}

func (b *zfs) Kind() Kind { return ZFS }

// resolve finds the dataset root is on: for a zfs mount, findmnt's source
// is the dataset name.
func (b *zfs) resolve(ctx context.Context, root string) (string, error) {
	if err := checkRoot(root); err != nil {
		return "", err
	}
	m, err := b.c.findmnt(ctx, root)
	if err != nil {
		return "", err
	}
	if m.FSType != "zfs" {
		return "", &NotOnVolumeError{Root: root, Kind: ZFS, Found: m.String()}
	}
	if b.dataset != "" && b.dataset != m.Source {
		return "", &NotOnVolumeError{Root: root, Kind: ZFS,
			Found: fmt.Sprintf("it is on dataset %s (mounted on %s), but snapshot_zfs_dataset is %s", m.Source, m.Target, b.dataset)}
	}
	return m.Source, nil
}

func (b *zfs) Check(ctx context.Context, root string) error {
	_, err := b.resolve(ctx, root)
	return err
}

func (b *zfs) Create(ctx context.Context, root string, jobID uint32) (Snapshot, error) {
	ds, err := b.resolve(ctx, root)
	if err != nil {
		return Snapshot{}, err
	}
	name := Name(jobID)
	if _, err := b.c.run(ctx, "zfs", "snapshot", ds+"@"+name); err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Kind: ZFS, Name: name, Volume: ds, Path: ds + "@" + name, Root: root, JobID: jobID, Created: b.now()}, nil
}

// path is the snapshot, rebuilt from the dataset and the checked name so
// that zfs destroy can only ever be given a snapshot, never a dataset.
func (b *zfs) path(s Snapshot) (string, error) {
	if err := checkOurs(s, ZFS); err != nil {
		return "", err
	}
	if s.Volume == "" || strings.ContainsAny(s.Volume, "@#") {
		return "", fmt.Errorf("%w: dataset %q", ErrNotOurs, s.Volume)
	}
	return s.Volume + "@" + s.Name, nil
}

// Rollback runs zfs rollback -r: snapshots newer than s (of jobs after it,
// which the rollback makes meaningless) are destroyed with it. ZFS rolls
// a mounted dataset back in place.
func (b *zfs) Rollback(ctx context.Context, s Snapshot) error {
	p, err := b.path(s)
	if err != nil {
		return err
	}
	_, err = b.c.run(ctx, "zfs", "rollback", "-r", p)
	return err
}

func (b *zfs) Release(ctx context.Context, s Snapshot) error {
	p, err := b.path(s)
	if err != nil {
		return err
	}
	_, err = b.c.run(ctx, "zfs", "destroy", p)
	return err
}

// List lists the snapshots of the dataset itself (-d 1), with creation
// times in seconds (-p).
func (b *zfs) List(ctx context.Context, root string) ([]Snapshot, error) {
	ds, err := b.resolve(ctx, root)
	if err != nil {
		return nil, err
	}
	out, err := b.c.run(ctx, "zfs", "list", "-H", "-p", "-t", "snapshot", "-o", "name,creation", "-d", "1", ds)
	if err != nil {
		return nil, err
	}
	var snaps []Snapshot
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		full, created, ok := strings.Cut(line, "\t")
		if !ok {
			return nil, fmt.Errorf("%w: zfs list: line %q", ErrToolOutput, line)
		}
		d, name, ok := strings.Cut(full, "@")
		if !ok || d != ds {
			continue
		}
		id, ok := parseName(name)
		if !ok {
			continue
		}
		sec, err := strconv.ParseInt(created, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: zfs list: creation %q of %s", ErrToolOutput, created, full)
		}
		snaps = append(snaps, Snapshot{Kind: ZFS, Name: name, Volume: ds, Path: full, Root: root, JobID: id,
			Created: time.Unix(sec, 0)})
	}
	sortSnapshots(snaps)
	return snaps, nil
}
