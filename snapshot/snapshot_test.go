package snapshot

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/openbrc/brc/internal/run"
)

func TestName(t *testing.T) {
	if n := Name(42); n != "brc-pre-42" {
		t.Errorf("Name(42) = %q", n)
	}
	for name, want := range map[string]bool{
		"brc-pre-42": true, "brc-pre-0": true, "brc-pre-4294967295": true,
		"brc-pre-": false, "brc-pre-042": false, "brc-pre-+1": false, "brc-pre-4294967296": false,
		"brc-pre-1x": false, "brc-pre-42 ": false, "pre-42": false, "": false,
	} {
		if _, ok := parseName(name); ok != want {
			t.Errorf("parseName(%q) ok = %v", name, ok)
		}
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want error
		msg  string
	}{
		{Config{}, nil, ""},
		{Config{Backend: None}, nil, ""},
		{Config{Backend: LVM, LVMLV: "vg0/dr", LVMSize: "512M", Keep: 5, Timeout: time.Minute}, nil, ""},
		{Config{Backend: LVM, LVMSize: "1.5g"}, nil, ""},
		{Config{Backend: ZFS, ZFSDataset: "tank/dr"}, nil, ""},
		{Config{Backend: Btrfs, BtrfsDir: "/srv/snaps/dr"}, nil, ""},
		{Config{Backend: "xfs"}, ErrUnknownBackend, `"xfs"`},
		{Config{Backend: "LVM"}, ErrUnknownBackend, `"LVM"`},
		{Config{Backend: ZFS, Keep: -1}, ErrConfig, "snapshot_keep"},
		{Config{Backend: ZFS, Timeout: -time.Second}, ErrConfig, "snapshot_timeout"},
		{Config{Backend: LVM, LVMLV: "dr"}, ErrConfig, "snapshot_lvm_lv"},
		{Config{Backend: LVM, LVMLV: "vg0/dr/x"}, ErrConfig, "snapshot_lvm_lv"},
		{Config{Backend: LVM, LVMLV: "/dev/vg0/dr"}, ErrConfig, "snapshot_lvm_lv"},
		{Config{Backend: LVM, LVMSize: "1 G"}, ErrConfig, "snapshot_lvm_size"},
		{Config{Backend: LVM, LVMSize: "10%ORIGIN"}, ErrConfig, "snapshot_lvm_size"},
		{Config{Backend: ZFS, ZFSDataset: "tank/dr@snap"}, ErrConfig, "snapshot_zfs_dataset"},
		{Config{Backend: ZFS, ZFSDataset: "/tank/dr"}, ErrConfig, "snapshot_zfs_dataset"},
		{Config{Backend: Btrfs, BtrfsDir: "snaps"}, ErrConfig, "snapshot_btrfs_dir"},
		{Config{Backend: Btrfs, BtrfsDir: "/srv/../snaps"}, ErrConfig, "snapshot_btrfs_dir"},
		{Config{Backend: ZFS, LVMLV: "vg0/dr"}, ErrConfig, `snapshot_lvm_lv is set but snapshot_backend is "zfs"`},
		{Config{ZFSDataset: "tank/dr"}, ErrConfig, `snapshot_zfs_dataset is set but snapshot_backend is "none"`},
		{Config{Backend: LVM, BtrfsDir: "/x"}, ErrConfig, "snapshot_btrfs_dir"},
	} {
		err := c.cfg.Validate()
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%+v: %v, want %v", c.cfg, err, c.want)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%+v: %q does not say %q", c.cfg, err, c.msg)
		}
		b, nerr := New(c.cfg, &run.Recorder{})
		if (err == nil) != (nerr == nil) || (err == nil && b == nil) {
			t.Errorf("%+v: New gives %v %v, Validate %v", c.cfg, b, nerr, err)
		}
	}

	d := Config{}.withDefaults()
	if d.Backend != None || d.Keep != DefaultKeep || d.Timeout != DefaultTimeout || d.LVMSize != DefaultLVMSize || d.Now == nil {
		t.Errorf("defaults %+v", d)
	}
	for k, want := range map[Kind]Kind{"": None, None: None, LVM: LVM, ZFS: ZFS, Btrfs: Btrfs} {
		b, err := New(Config{Backend: k}, &run.Recorder{})
		if err != nil || b.Kind() != want {
			t.Errorf("New(%q): %v %v", k, b, err)
		}
	}
}

func TestNone(t *testing.T) {
	ctx := context.Background()
	rec := &run.Recorder{}
	b := newBackend(t, Config{}, rec)
	if err := b.Check(ctx, "/anything"); err != nil {
		t.Error(err)
	}
	if _, err := b.Create(ctx, "/x", 1); !errors.Is(err, ErrDisabled) {
		t.Error(err)
	}
	if err := b.Rollback(ctx, Snapshot{}); !errors.Is(err, ErrDisabled) {
		t.Error(err)
	}
	if err := b.Release(ctx, Snapshot{}); !errors.Is(err, ErrDisabled) {
		t.Error(err)
	}
	if s, err := b.List(ctx, "/x"); s != nil || err != nil {
		t.Error(s, err)
	}
	if err := Prune(ctx, b, "/x", 0); err != nil {
		t.Error(err)
	}
	g, err := Before(ctx, b, "/x", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if g.Snapshot() != (Snapshot{}) {
		t.Errorf("snapshot %+v", g.Snapshot())
	}
	if err := g.Done(ctx, false); err != nil {
		t.Error(err)
	}
	wantArgvs(t, rec)
}

func TestTimeout(t *testing.T) {
	ctx := context.Background()
	br := &blockRunner{}
	b := newBackend(t, Config{Backend: ZFS, Timeout: 30 * time.Millisecond}, br)
	start := time.Now()
	_, err := b.Create(ctx, zfsRoot, 42)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	var ce *CommandError
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ce) {
		t.Fatalf("%#v", err)
	}
	if ce.ExitCode != -1 || ce.Cmd != findmntCmd(zfsRoot) {
		t.Errorf("%+v", ce)
	}
	wantErr(t, err, "snapshot: "+findmntCmd(zfsRoot)+": snapshot: command timed out after 30ms")
	if got := br.rec.Argvs(); len(got) != 1 {
		t.Errorf("ran %q", got)
	}

	// The caller's own cancellation is not a timeout.
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(20*time.Millisecond, cancel)
	b = newBackend(t, Config{Backend: ZFS}, &blockRunner{})
	err = b.Release(cctx, zfsSnap(42))
	if errors.Is(err, ErrTimeout) || !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
	wantErr(t, err, "zfs destroy tank/dr@brc-pre-42")

	// Through the real runner: a hung command is stopped.
	c := cmds{r: run.Exec{WaitDelay: time.Second}, timeout: 100 * time.Millisecond}
	start = time.Now()
	_, err = c.run(ctx, "sleep", "10")
	if !errors.Is(err, ErrTimeout) || time.Since(start) > 5*time.Second {
		t.Errorf("sleep: %v after %v", err, time.Since(start))
	}
	_, err = c.run(ctx, "/nonexistent/brc-tool")
	if !errors.As(err, &ce) || ce.ExitCode != -1 || errors.Is(err, ErrTimeout) {
		t.Errorf("missing tool: %#v", err)
	}
	_, err = c.run(ctx, "sh", "-c", "echo 'no such pool' >&2; exit 2")
	wantErr(t, err, `snapshot: sh -c "echo 'no such pool' >&2; exit 2": exit status 2: no such pool`)
	if out, err := c.run(ctx, "echo", "hi"); err != nil || string(out) != "hi\n" {
		t.Errorf("echo: %q %v", out, err)
	}
}

func TestGuard(t *testing.T) {
	ctx := context.Background()

	// Success: the snapshot stays, older ones are pruned to keep.
	rec := &run.Recorder{Respond: zfsFake().respond}
	b := newBackend(t, Config{Backend: ZFS}, rec)
	g, err := Before(ctx, b, zfsRoot, 44, 3)
	if err != nil {
		t.Fatal(err)
	}
	if g.Snapshot() != zfsSnap(44) {
		t.Errorf("snapshot %+v", g.Snapshot())
	}
	if err := g.Done(ctx, true); err != nil {
		t.Fatal(err)
	}
	wantArgvs(t, rec,
		findmntCmd(zfsRoot), "zfs snapshot tank/dr@brc-pre-44",
		findmntCmd(zfsRoot), "zfs list -H -p -t snapshot -o name,creation -d 1 tank/dr",
		"zfs destroy tank/dr@brc-pre-40",
	)
	if err := g.Done(ctx, false); !errors.Is(err, ErrGuardDone) {
		t.Errorf("second Done: %v", err)
	}
	if len(rec.Argvs()) != 5 {
		t.Errorf("second Done ran %q", rec.Argvs()[5:])
	}

	// Failure: rolled back, then released.
	rec = &run.Recorder{Respond: zfsFake().respond}
	g, err = Before(ctx, newBackend(t, Config{Backend: ZFS}, rec), zfsRoot, 44, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Done(ctx, false); err != nil {
		t.Fatal(err)
	}
	wantArgvs(t, rec, findmntCmd(zfsRoot), "zfs snapshot tank/dr@brc-pre-44",
		"zfs rollback -r tank/dr@brc-pre-44", "zfs destroy tank/dr@brc-pre-44")

	// The rollback fails: a *RollbackError, and the snapshot is never deleted.
	f := zfsFake()
	f["zfs rollback -r tank/dr@brc-pre-44"] = answer{code: 1, stderr: "cannot rollback 'tank/dr': dataset is busy"}
	rec = &run.Recorder{Respond: f.respond}
	g, _ = Before(ctx, newBackend(t, Config{Backend: ZFS}, rec), zfsRoot, 44, 0)
	err = g.Done(ctx, false)
	var re *RollbackError
	if !errors.Is(err, ErrRollback) || !errors.As(err, &re) || re.Snapshot != zfsSnap(44) {
		t.Fatalf("%#v", err)
	}
	wantErr(t, err, "rollback of "+zfsRoot+" to tank/dr@brc-pre-44 failed", "kept", "zfs rollback -r tank/dr@brc-pre-44: exit status 1: cannot rollback 'tank/dr': dataset is busy")
	wantArgvs(t, rec, findmntCmd(zfsRoot), "zfs snapshot tank/dr@brc-pre-44", "zfs rollback -r tank/dr@brc-pre-44")

	// Rolled back, but the release fails: not a RollbackError.
	f = zfsFake()
	f["zfs destroy tank/dr@brc-pre-44"] = answer{code: 1, stderr: "dataset is busy"}
	g, _ = Before(ctx, newBackend(t, Config{Backend: ZFS}, &run.Recorder{Respond: f.respond}), zfsRoot, 44, 0)
	err = g.Done(ctx, false)
	if errors.Is(err, ErrRollback) {
		t.Errorf("release failure reported as a rollback failure: %v", err)
	}
	wantErr(t, err, "rolled back, but releasing tank/dr@brc-pre-44 failed", "zfs destroy", "exit status 1", "dataset is busy")

	// Before fails: no guard.
	f = zfsFake()
	f["zfs snapshot tank/dr@brc-pre-44"] = answer{code: 1, stderr: "out of space"}
	if g, err := Before(ctx, newBackend(t, Config{Backend: ZFS}, &run.Recorder{Respond: f.respond}), zfsRoot, 44, 0); g != nil || err == nil {
		t.Errorf("Before: %v %v", g, err)
	}

	// lvm: the merge consumes the snapshot, so no lvremove.
	rec = &run.Recorder{Respond: lvmFake().respond}
	g, err = Before(ctx, newBackend(t, Config{Backend: LVM}, rec), lvmRoot, 42, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Done(ctx, false); err != nil {
		t.Fatal(err)
	}
	for _, a := range rec.Argvs() {
		if strings.HasPrefix(a, "lvremove") {
			t.Errorf("ran %s after a merge", a)
		}
	}
}

func TestFindmntOutput(t *testing.T) {
	ctx := context.Background()
	for _, out := range []string{"", "/srv/dr /dev/vda ext4\n", `{"filesystems": []}`, strings.Repeat("x", 2000)} {
		f := fake{findmntCmd(zfsRoot): {out: out}}
		err := newBackend(t, Config{Backend: ZFS}, &run.Recorder{Respond: f.respond}).Check(ctx, zfsRoot)
		if !errors.Is(err, ErrToolOutput) || len(err.Error()) > 700 {
			t.Errorf("findmnt printing %.40q: %v", out, err)
		}
	}
	// findmnt fails for a path that does not exist.
	f := fake{findmntCmd("/srv/none"): {code: 1}}
	err := newBackend(t, Config{Backend: Btrfs}, &run.Recorder{Respond: f.respond}).Check(ctx, "/srv/none")
	wantErr(t, err, "snapshot: "+findmntCmd("/srv/none")+": exit status 1")
}

func TestSnapshotString(t *testing.T) {
	if s := zfsSnap(42).String(); s != "zfs snapshot tank/dr@brc-pre-42 of /tank/dr/target" {
		t.Errorf("%q", s)
	}
}
