package snapshot

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/openbrc/brc/internal/run"
)

const zfsRoot = "/tank/dr/target"

// zfsFake: the root is a directory in dataset tank/dr.
func zfsFake() fake {
	return fake{
		findmntCmd(zfsRoot): {out: findmntOut("/tank/dr", "tank/dr", "zfs", "rw,xattr,noacl")},
		// zfs list -H -p: tab-separated, seconds since the epoch; -d 1
		// lists tank/dr's own snapshots, including ones not ours.
		"zfs list -H -p -t snapshot -o name,creation -d 1 tank/dr": {out: "" +
			"tank/dr@brc-pre-41\t1740830400\n" +
			"tank/dr@daily-2025-03-01\t1740787200\n" +
			"tank/dr@brc-pre-40\t1740826800\n" +
			"tank/dr@brc-pre-042\t1740826000\n" +
			"tank/dr@brc-pre-39\t1740830400\n" +
			"tank/dr@brc-pre-43\t1740834000\n"},
	}
}

func zfsSetup(cfg Config) func(*testing.T, run.Runner) Backend {
	cfg.Backend = ZFS
	return func(t *testing.T, r run.Runner) Backend { return newBackend(t, cfg, r) }
}

func zfsSnap(id uint32) Snapshot {
	return Snapshot{Kind: ZFS, Name: Name(id), Volume: "tank/dr", Path: "tank/dr@" + Name(id), Root: zfsRoot, JobID: id, Created: t0}
}

func TestZFSCheck(t *testing.T) {
	ctx := context.Background()
	rec := &run.Recorder{Respond: zfsFake().respond}
	b := zfsSetup(Config{})(t, rec)
	if err := b.Check(ctx, zfsRoot); err != nil {
		t.Fatal(err)
	}
	wantArgvs(t, rec, findmntCmd(zfsRoot))

	// The configured dataset must be the one found.
	err := zfsSetup(Config{ZFSDataset: "tank/other"})(t, rec).Check(ctx, zfsRoot)
	if !errors.Is(err, ErrNotOnVolume) {
		t.Fatalf("other dataset: %v", err)
	}
	wantErr(t, err, zfsRoot, "tank/dr", "snapshot_zfs_dataset is tank/other")
	if err := zfsSetup(Config{ZFSDataset: "tank/dr"})(t, rec).Check(ctx, zfsRoot); err != nil {
		t.Fatal(err)
	}

	// Not zfs at all.
	f := fake{findmntCmd("/srv/dr"): {out: findmntOut("/", "/dev/vda", "ext4", "rw,relatime")}}
	err = zfsSetup(Config{})(t, &run.Recorder{Respond: f.respond}).Check(ctx, "/srv/dr")
	var nv *NotOnVolumeError
	if !errors.As(err, &nv) || !errors.Is(err, ErrNotOnVolume) || nv.Kind != ZFS {
		t.Fatalf("ext4: %v", err)
	}
	wantErr(t, err, "/srv/dr is not on a ZFS dataset", "ext4 file system from /dev/vda mounted on /")

	if err := b.Check(ctx, "tank/dr"); !errors.Is(err, ErrBadRoot) {
		t.Errorf("relative root: %v", err)
	}
}

func TestZFSCreateRollbackRelease(t *testing.T) {
	ctx := context.Background()
	rec := &run.Recorder{Respond: zfsFake().respond}
	b := zfsSetup(Config{})(t, rec)
	s, err := b.Create(ctx, zfsRoot, 42)
	if err != nil {
		t.Fatal(err)
	}
	if s != zfsSnap(42) {
		t.Errorf("snapshot %+v, want %+v", s, zfsSnap(42))
	}
	if err := b.Rollback(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := b.Release(ctx, s); err != nil {
		t.Fatal(err)
	}
	wantArgvs(t, rec,
		findmntCmd(zfsRoot),
		"zfs snapshot tank/dr@brc-pre-42",
		"zfs rollback -r tank/dr@brc-pre-42",
		"zfs destroy tank/dr@brc-pre-42",
	)
}

func TestZFSNotOurs(t *testing.T) {
	ctx := context.Background()
	rec := &run.Recorder{}
	b := zfsSetup(Config{})(t, rec)
	bad := []Snapshot{
		{Kind: ZFS, Name: "daily", Volume: "tank/dr", JobID: 0},
		{Kind: ZFS, Name: "brc-pre-1", Volume: "tank/dr", JobID: 2},
		{Kind: ZFS, Name: "brc-pre-1", Volume: "tank/dr@x", JobID: 1},
		{Kind: ZFS, Name: "brc-pre-1", Volume: "", JobID: 1},
		{Kind: Btrfs, Name: "brc-pre-1", Volume: "tank/dr", JobID: 1},
	}
	for _, s := range bad {
		if err := b.Release(ctx, s); !errors.Is(err, ErrNotOurs) {
			t.Errorf("Release(%+v): %v", s, err)
		}
		if err := b.Rollback(ctx, s); !errors.Is(err, ErrNotOurs) {
			t.Errorf("Rollback(%+v): %v", s, err)
		}
	}
	wantArgvs(t, rec)
}

func TestZFSListPrune(t *testing.T) {
	ctx := context.Background()
	rec := &run.Recorder{Respond: zfsFake().respond}
	b := zfsSetup(Config{})(t, rec)
	snaps, err := b.List(ctx, zfsRoot)
	if err != nil {
		t.Fatal(err)
	}
	var want []Snapshot
	for _, x := range []struct {
		id  uint32
		sec int64
	}{{40, 1740826800}, {39, 1740830400}, {41, 1740830400}, {43, 1740834000}} {
		s := zfsSnap(x.id)
		s.Created = time.Unix(x.sec, 0)
		want = append(want, s)
	}
	if len(snaps) != len(want) {
		t.Fatalf("listed %+v", snaps)
	}
	for i := range want {
		if snaps[i] != want[i] {
			t.Errorf("snapshot %d: %+v, want %+v", i, snaps[i], want[i])
		}
	}

	rec = &run.Recorder{Respond: zfsFake().respond}
	if err := Prune(ctx, zfsSetup(Config{})(t, rec), zfsRoot, 2); err != nil {
		t.Fatal(err)
	}
	// Oldest first; 39 and 41 were made in the same second: job id decides.
	wantArgvs(t, rec,
		findmntCmd(zfsRoot),
		"zfs list -H -p -t snapshot -o name,creation -d 1 tank/dr",
		"zfs destroy tank/dr@brc-pre-40",
		"zfs destroy tank/dr@brc-pre-39",
	)

	// A failed destroy stops the pruning: never a newer one before an older one.
	f := zfsFake()
	f["zfs destroy tank/dr@brc-pre-40"] = answer{code: 1, stderr: "cannot destroy snapshot tank/dr@brc-pre-40: dataset is busy"}
	rec = &run.Recorder{Respond: f.respond}
	err = Prune(ctx, zfsSetup(Config{})(t, rec), zfsRoot, 1)
	wantErr(t, err, "zfs destroy tank/dr@brc-pre-40", "exit status 1", "dataset is busy")
	if n := len(rec.Argvs()); n != 3 {
		t.Errorf("%d commands after a failed destroy: %q", n, rec.Argvs())
	}

	// Unparsable output.
	f = zfsFake()
	f["zfs list -H -p -t snapshot -o name,creation -d 1 tank/dr"] = answer{out: "tank/dr@brc-pre-1\tyesterday\n"}
	_, err = zfsSetup(Config{})(t, &run.Recorder{Respond: f.respond}).List(ctx, zfsRoot)
	if !errors.Is(err, ErrToolOutput) {
		t.Errorf("bad creation: %v", err)
	}
	// No snapshots at all.
	f["zfs list -H -p -t snapshot -o name,creation -d 1 tank/dr"] = answer{}
	if s, err := zfsSetup(Config{})(t, &run.Recorder{Respond: f.respond}).List(ctx, zfsRoot); err != nil || len(s) != 0 {
		t.Errorf("empty list: %v %v", s, err)
	}
}

func TestZFSCommandFailures(t *testing.T) {
	ctx := context.Background()
	setup := zfsSetup(Config{})
	checkEachFailure(t, zfsFake(), setup, func(b Backend) error { return b.Check(ctx, zfsRoot) })
	checkEachFailure(t, zfsFake(), setup, func(b Backend) error { _, err := b.Create(ctx, zfsRoot, 42); return err })
	checkEachFailure(t, zfsFake(), setup, func(b Backend) error { return b.Rollback(ctx, zfsSnap(42)) })
	checkEachFailure(t, zfsFake(), setup, func(b Backend) error { return b.Release(ctx, zfsSnap(42)) })
	checkEachFailure(t, zfsFake(), setup, func(b Backend) error { _, err := b.List(ctx, zfsRoot); return err })
	checkEachFailure(t, zfsFake(), setup, func(b Backend) error { return Prune(ctx, b, zfsRoot, 1) })

	// The error is a *CommandError wrapping the *run.ExitError.
	f := zfsFake()
	f["zfs snapshot tank/dr@brc-pre-42"] = answer{code: 1, stderr: "cannot create snapshot 'tank/dr@brc-pre-42': dataset already exists"}
	_, err := setup(t, &run.Recorder{Respond: f.respond}).Create(ctx, zfsRoot, 42)
	var ce *CommandError
	var ee *run.ExitError
	if !errors.As(err, &ce) || !errors.As(err, &ee) || ce.ExitCode != 1 || ce.Cmd != "zfs snapshot tank/dr@brc-pre-42" {
		t.Fatalf("%#v", err)
	}
	if got, want := err.Error(), "snapshot: zfs snapshot tank/dr@brc-pre-42: exit status 1: cannot create snapshot 'tank/dr@brc-pre-42': dataset already exists"; got != want {
		t.Errorf("message\n\t%s\nwant\n\t%s", got, want)
	}
}
