package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openbrc/brc/internal/run"
)

// btrfsShow is btrfs subvolume show output (btrfs-progs 6.2) with the
// given creation time.
func btrfsShow(name, created string) string {
	return name + "\n" +
		"\tName: \t\t\t" + name + "\n" +
		"\tUUID: \t\t\ta06552a0-af2d-6b49-b8cf-5db249605a4d\n" +
		"\tParent UUID: \t\tbe41cd41-e2fc-6041-a30e-d8b5bcc52903\n" +
		"\tReceived UUID: \t\t-\n" +
		"\tCreation time: \t\t" + created + "\n" +
		"\tSubvolume ID: \t\t257\n" +
		"\tGeneration: \t\t7\n" +
		"\tGen at creation: \t7\n" +
		"\tParent ID: \t\t5\n" +
		"\tTop level ID: \t\t5\n" +
		"\tFlags: \t\t\treadonly\n" +
		"\tSend transid: \t\t0\n" +
		"\tSend time: \t\t" + created + "\n" +
		"\tReceive transid: \t0\n" +
		"\tReceive time: \t\t-\n" +
		"\tSnapshot(s):\n"
}

// btrfsEnv is a fake btrfs layout in plain directories: mnt stands for
// the mounted file system, root for the target subvolume. The fake
// commands make and delete trees as the real ones would, so the renames
// of Rollback run for real.
type btrfsEnv struct {
	mnt, root, snapDir string
	f                  fake
}

func newBtrfsEnv(t *testing.T) *btrfsEnv {
	mnt := t.TempDir()
	e := &btrfsEnv{mnt: mnt, root: filepath.Join(mnt, "target"), snapDir: filepath.Join(mnt, ".brc-snapshots", "target")}
	if err := os.Mkdir(e.root, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(e.root, "f"), "after the job")
	snap := filepath.Join(e.snapDir, "brc-pre-42")
	tmp := e.root + ".brc-rollback"
	e.f = fake{
		findmntCmd(e.root):               {out: findmntOut(mnt, "/dev/loop0", "btrfs", "rw,relatime,space_cache=v2,subvolid=5,subvol=/")},
		"btrfs subvolume show " + e.root: {out: btrfsShow("target", "2025-01-01 00:00:00 +0000")},
		"btrfs subvolume snapshot -r " + e.root + " " + snap: {do: func() {
			os.Mkdir(snap, 0o755)
			os.WriteFile(filepath.Join(snap, "f"), []byte("before the job"), 0o644)
		}},
		"btrfs subvolume snapshot " + snap + " " + tmp: {do: func() {
			os.Mkdir(tmp, 0o755)
			os.WriteFile(filepath.Join(tmp, "f"), []byte("before the job"), 0o644)
		}},
		"btrfs subvolume delete " + tmp:  {do: func() { os.RemoveAll(tmp) }},
		"btrfs subvolume delete " + snap: {do: func() { os.RemoveAll(snap) }},
	}
	return e
}

func (e *btrfsEnv) snap(id uint32) Snapshot {
	return Snapshot{Kind: Btrfs, Name: Name(id), Volume: e.root, Path: filepath.Join(e.snapDir, Name(id)), Root: e.root, JobID: id, Created: t0}
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func btrfsSetup(cfg Config) func(*testing.T, run.Runner) Backend {
	cfg.Backend = Btrfs
	return func(t *testing.T, r run.Runner) Backend { return newBackend(t, cfg, r) }
}

func TestBtrfsCheck(t *testing.T) {
	ctx := context.Background()
	e := newBtrfsEnv(t)
	rec := &run.Recorder{Respond: e.f.respond}
	if err := btrfsSetup(Config{})(t, rec).Check(ctx, e.root); err != nil {
		t.Fatal(err)
	}
	wantArgvs(t, rec, findmntCmd(e.root), "btrfs subvolume show "+e.root)

	// A plain directory on btrfs.
	e.f["btrfs subvolume show "+e.root] = answer{code: 1, stderr: "ERROR: Not a Btrfs subvolume: Invalid argument"}
	err := btrfsSetup(Config{})(t, &run.Recorder{Respond: e.f.respond}).Check(ctx, e.root)
	if !errors.Is(err, ErrNotOnVolume) {
		t.Fatalf("plain directory: %v", err)
	}
	wantErr(t, err, e.root+" is not on a btrfs subvolume", "not a subvolume", "exit status 1", "Not a Btrfs subvolume")

	// Another file system.
	e.f[findmntCmd(e.root)] = answer{out: findmntOut("/", "/dev/vda", "ext4", "rw")}
	rec = &run.Recorder{Respond: e.f.respond}
	err = btrfsSetup(Config{})(t, rec).Check(ctx, e.root)
	if !errors.Is(err, ErrNotOnVolume) {
		t.Fatalf("ext4: %v", err)
	}
	wantErr(t, err, "ext4 file system from /dev/vda mounted on /")
	wantArgvs(t, rec, findmntCmd(e.root))

	// A mount point cannot be swapped by rename.
	e.f[findmntCmd(e.root)] = answer{out: findmntOut(e.root, "/dev/loop0[/target]", "btrfs", "rw,subvol=/target")}
	err = btrfsSetup(Config{})(t, &run.Recorder{Respond: e.f.respond}).Check(ctx, e.root)
	if !errors.Is(err, ErrNotOnVolume) {
		t.Fatalf("mount point: %v", err)
	}
	wantErr(t, err, "mount point")

	if err := btrfsSetup(Config{})(t, rec).Check(ctx, e.root+"/"); !errors.Is(err, ErrBadRoot) {
		t.Errorf("unclean root: %v", err)
	}
}

func TestBtrfsCreateRollbackRelease(t *testing.T) {
	ctx := context.Background()
	e := newBtrfsEnv(t)
	rec := &run.Recorder{Respond: e.f.respond}
	b := btrfsSetup(Config{})(t, rec)
	s, err := b.Create(ctx, e.root, 42)
	if err != nil {
		t.Fatal(err)
	}
	if s != e.snap(42) {
		t.Errorf("snapshot %+v, want %+v", s, e.snap(42))
	}
	if fi, err := os.Stat(e.snapDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("snapshot directory: %v %v", fi, err)
	}
	if err := b.Rollback(ctx, s); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(e.root, "f")); got != "before the job" {
		t.Errorf("root after rollback has %q", got)
	}
	if _, err := os.Lstat(e.root + ".brc-rollback"); !os.IsNotExist(err) {
		t.Errorf("replaced tree left: %v", err)
	}
	if err := b.Release(ctx, s); err != nil {
		t.Fatal(err)
	}
	tmp, snap := e.root+".brc-rollback", s.Path
	wantArgvs(t, rec,
		findmntCmd(e.root), "btrfs subvolume show "+e.root,
		"btrfs subvolume snapshot -r "+e.root+" "+snap,
		"btrfs subvolume snapshot "+snap+" "+tmp,
		"btrfs subvolume delete "+tmp,
		"btrfs subvolume delete "+snap,
	)

	// A name that exists is refused before btrfs snapshots into it.
	if err := os.MkdirAll(s.Path, 0o755); err != nil {
		t.Fatal(err)
	}
	rec = &run.Recorder{Respond: e.f.respond}
	if _, err := btrfsSetup(Config{})(t, rec).Create(ctx, e.root, 42); !errors.Is(err, ErrExists) {
		t.Errorf("existing name: %v", err)
	}
	wantArgvs(t, rec, findmntCmd(e.root), "btrfs subvolume show "+e.root)

	// snapshot_btrfs_dir is used as is.
	dir := filepath.Join(e.mnt, "snaps")
	rec = &run.Recorder{}
	e.f[findmntCmd(e.root)] = answer{out: findmntOut(e.mnt, "/dev/loop0", "btrfs", "rw")}
	rec.Respond = e.f.respond
	s, err = btrfsSetup(Config{BtrfsDir: dir})(t, rec).Create(ctx, e.root, 43)
	if err != nil || s.Path != filepath.Join(dir, "brc-pre-43") {
		t.Fatalf("%+v %v", s, err)
	}
	wantArgvs(t, rec, findmntCmd(e.root), "btrfs subvolume show "+e.root, "btrfs subvolume snapshot -r "+e.root+" "+s.Path)
}

func TestBtrfsRollbackEdges(t *testing.T) {
	ctx := context.Background()

	// A leftover of a rollback stopped half-way is deleted first.
	e := newBtrfsEnv(t)
	tmp := e.root + ".brc-rollback"
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(tmp, "f"), "stale")
	rec := &run.Recorder{Respond: e.f.respond}
	if err := btrfsSetup(Config{})(t, rec).Rollback(ctx, e.snap(42)); err != nil {
		t.Fatal(err)
	}
	wantArgvs(t, rec, "btrfs subvolume delete "+tmp, "btrfs subvolume snapshot "+e.snap(42).Path+" "+tmp, "btrfs subvolume delete "+tmp)
	if got := readFile(t, filepath.Join(e.root, "f")); got != "before the job" {
		t.Errorf("root after rollback has %q", got)
	}

	// The root is gone: the swap fails, the copy is deleted, and the error
	// says why.
	e = newBtrfsEnv(t)
	tmp = e.root + ".brc-rollback"
	os.RemoveAll(e.root)
	rec = &run.Recorder{Respond: e.f.respond}
	err := btrfsSetup(Config{})(t, rec).Rollback(ctx, e.snap(42))
	wantErr(t, err, "renameat2 RENAME_EXCHANGE", "no such file")
	wantArgvs(t, rec, "btrfs subvolume snapshot "+e.snap(42).Path+" "+tmp, "btrfs subvolume delete "+tmp)

	// Rolled back, but the replaced tree could not be deleted: named.
	e = newBtrfsEnv(t)
	tmp = e.root + ".brc-rollback"
	e.f["btrfs subvolume delete "+tmp] = answer{code: 1, stderr: "ERROR: Could not destroy subvolume/snapshot: Directory not empty"}
	err = btrfsSetup(Config{})(t, &run.Recorder{Respond: e.f.respond}).Rollback(ctx, e.snap(42))
	wantErr(t, err, "rolled back", "replaced tree is left at "+tmp, "Directory not empty")
	if got := readFile(t, filepath.Join(e.root, "f")); got != "before the job" {
		t.Errorf("root after rollback has %q", got)
	}

	// Snapshots this backend could not have made.
	for _, s := range []Snapshot{
		{Kind: Btrfs, Name: "brc-pre-1", JobID: 1, Root: e.root, Volume: e.root, Path: filepath.Join(e.snapDir, "other")},
		{Kind: Btrfs, Name: "brc-pre-1", JobID: 1, Root: e.root, Volume: e.root, Path: "brc-pre-1"},
		{Kind: Btrfs, Name: "brc-pre-1", JobID: 1, Root: "target", Volume: "target", Path: "/x/brc-pre-1"},
		{Kind: Btrfs, Name: "brc-pre-1", JobID: 1, Root: e.root, Volume: "/elsewhere", Path: "/x/brc-pre-1"},
	} {
		rec := &run.Recorder{}
		b := btrfsSetup(Config{})(t, rec)
		if err := b.Rollback(ctx, s); err == nil {
			t.Errorf("Rollback(%+v) accepted", s)
		}
		if err := b.Release(ctx, s); err == nil {
			t.Errorf("Release(%+v) accepted", s)
		}
		wantArgvs(t, rec)
	}
}

func TestBtrfsListPrune(t *testing.T) {
	ctx := context.Background()
	e := newBtrfsEnv(t)

	// No snapshot directory yet: nothing, and nothing run.
	rec := &run.Recorder{Respond: e.f.respond}
	if s, err := btrfsSetup(Config{})(t, rec).List(ctx, e.root); err != nil || len(s) != 0 {
		t.Fatalf("%v %v", s, err)
	}
	wantArgvs(t, rec)

	times := map[string]string{
		"brc-pre-40": "2025-03-01 10:00:00 +0000",
		"brc-pre-9":  "2025-03-01 11:00:00 +0000", // job ids are not the order
		"brc-pre-41": "2025-03-01 09:00:00 +0000",
		"brc-pre-42": "2025-03-01 12:00:00 +0100",
	}
	for name, at := range times {
		p := filepath.Join(e.snapDir, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		e.f["btrfs subvolume show "+p] = answer{out: btrfsShow(name, at)}
		e.f["btrfs subvolume delete "+p] = answer{do: func() { os.RemoveAll(p) }}
	}
	for _, other := range []string{"manual", "brc-pre-x", "brc-pre-07"} {
		os.Mkdir(filepath.Join(e.snapDir, other), 0o755)
	}
	writeFile(t, filepath.Join(e.snapDir, "brc-pre-5"), "a file, not a snapshot")

	rec = &run.Recorder{Respond: e.f.respond}
	snaps, err := btrfsSetup(Config{})(t, rec).List(ctx, e.root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range snaps {
		got = append(got, s.Name+" "+s.Created.UTC().Format(time.TimeOnly))
		if s != (Snapshot{Kind: Btrfs, Name: s.Name, Volume: e.root, Path: filepath.Join(e.snapDir, s.Name), Root: e.root, JobID: s.JobID, Created: s.Created}) {
			t.Errorf("listed %+v", s)
		}
	}
	want := []string{"brc-pre-41 09:00:00", "brc-pre-40 10:00:00", "brc-pre-9 11:00:00", "brc-pre-42 11:00:00"}
	if len(got) != len(want) {
		t.Fatalf("listed %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("listed %q, want %q", got, want)
			break
		}
	}

	rec = &run.Recorder{Respond: e.f.respond}
	if err := Prune(ctx, btrfsSetup(Config{})(t, rec), e.root, 2); err != nil {
		t.Fatal(err)
	}
	argvs := rec.Argvs()
	if n := len(argvs); n != 6 || argvs[4] != "btrfs subvolume delete "+filepath.Join(e.snapDir, "brc-pre-41") ||
		argvs[5] != "btrfs subvolume delete "+filepath.Join(e.snapDir, "brc-pre-40") {
		t.Errorf("prune ran %q", argvs)
	}
	for _, name := range []string{"brc-pre-9", "brc-pre-42", "manual", "brc-pre-07", "brc-pre-5"} {
		if _, err := os.Lstat(filepath.Join(e.snapDir, name)); err != nil {
			t.Errorf("%s pruned: %v", name, err)
		}
	}

	// Output without a creation time.
	e.f["btrfs subvolume show "+filepath.Join(e.snapDir, "brc-pre-9")] = answer{out: "brc-pre-9\n\tName: brc-pre-9\n"}
	if _, err := btrfsSetup(Config{})(t, &run.Recorder{Respond: e.f.respond}).List(ctx, e.root); !errors.Is(err, ErrToolOutput) {
		t.Errorf("no creation time: %v", err)
	}
}

func TestBtrfsCommandFailures(t *testing.T) {
	ctx := context.Background()
	setup := btrfsSetup(Config{})
	// Each run gets fresh trees, since the fake commands change them.
	each := func(op func(e *btrfsEnv, b Backend) error) {
		t.Helper()
		e := newBtrfsEnv(t)
		rec := &run.Recorder{Respond: e.f.respond}
		if err := op(e, setup(t, rec)); err != nil {
			t.Fatalf("without failures: %v", err)
		}
		for _, cmd := range rec.Argvs() {
			e2 := newBtrfsEnv(t)
			cmd2 := strings.ReplaceAll(cmd, e.mnt, e2.mnt) // the same command in e2's trees
			err := op(e2, setup(t, &run.Recorder{Respond: e2.f.failing(cmd2)}))
			wantErr(t, err, cmd2, "exit status 3", "boom")
		}
	}
	each(func(e *btrfsEnv, b Backend) error { return b.Check(ctx, e.root) })
	each(func(e *btrfsEnv, b Backend) error { _, err := b.Create(ctx, e.root, 42); return err })
	each(func(e *btrfsEnv, b Backend) error {
		if _, err := b.Create(ctx, e.root, 42); err != nil {
			return err
		}
		return b.Rollback(ctx, e.snap(42))
	})
	each(func(e *btrfsEnv, b Backend) error {
		if _, err := b.Create(ctx, e.root, 42); err != nil {
			return err
		}
		return b.Release(ctx, e.snap(42))
	})
	each(func(e *btrfsEnv, b Backend) error {
		if _, err := b.Create(ctx, e.root, 42); err != nil {
			return err
		}
		e.f["btrfs subvolume show "+e.snap(42).Path] = answer{out: btrfsShow("brc-pre-42", "2025-03-01 12:00:00 +0000")}
		return Prune(ctx, b, e.root, 0)
	})
}
