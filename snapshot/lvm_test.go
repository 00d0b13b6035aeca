package snapshot

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/openbrc/brc/internal/run"
)

const (
	lvmRoot     = "/srv/dr/target"
	lvsResolve  = "lvs --reportformat json -o vg_name,lv_name,pool_lv /dev/mapper/vg0-dr"
	lvsList     = "lvs --reportformat json -o lv_name,origin,lv_time vg0"
	lvmMountCmd = "mount -t ext4 -o rw,relatime,errors=remount-ro /dev/mapper/vg0-dr /srv/dr"
)

// lvsOut wraps rows the way lvs 2.03 prints its JSON report.
func lvsOut(rows ...string) string {
	s := "  {\n      \"report\": [\n          {\n              \"lv\": [\n"
	for i, r := range rows {
		s += "                  " + r
		if i < len(rows)-1 {
			s += ","
		}
		s += "\n"
	}
	return s + "              ]\n          }\n      ]\n  }\n"
}

// lvmFake: the root is a directory on ext4 on vg0/dr, mounted on /srv/dr.
func lvmFake() fake {
	return fake{
		findmntCmd(lvmRoot): {out: findmntOut("/srv/dr", "/dev/mapper/vg0-dr", "ext4", "rw,relatime,errors=remount-ro")},
		lvsResolve:          {out: lvsOut(`{"vg_name":"vg0", "lv_name":"dr", "pool_lv":""}`)},
		lvsList: {out: lvsOut(
			`{"lv_name":"dr", "origin":"", "lv_time":"2025-01-10 08:00:00 +0000"}`,
			`{"lv_name":"brc-pre-41", "origin":"dr", "lv_time":"2025-03-01 11:00:00 +0000"}`,
			`{"lv_name":"brc-pre-40", "origin":"dr", "lv_time":"2025-03-01 10:00:00 +0100"}`,
			`{"lv_name":"brc-pre-7", "origin":"home", "lv_time":"2025-01-01 00:00:00 +0000"}`,
			`{"lv_name":"before-upgrade", "origin":"dr", "lv_time":"2025-01-01 00:00:00 +0000"}`,
			`{"lv_name":"brc-pre-39", "origin":"dr", "lv_time":"2025-03-01 09:30:00 +0000"}`,
			`{"lv_name":"home", "origin":"", "lv_time":"2025-01-10 08:00:00 +0000"}`,
		)},
	}
}

func lvmSetup(cfg Config) func(*testing.T, run.Runner) Backend {
	cfg.Backend = LVM
	return func(t *testing.T, r run.Runner) Backend { return newBackend(t, cfg, r) }
}

func lvmSnap(id uint32) Snapshot {
	return Snapshot{Kind: LVM, Name: Name(id), Volume: "vg0/dr", Path: "vg0/" + Name(id), Root: lvmRoot, JobID: id, Created: t0}
}

func TestLVMCheck(t *testing.T) {
	ctx := context.Background()
	rec := &run.Recorder{Respond: lvmFake().respond}
	if err := lvmSetup(Config{})(t, rec).Check(ctx, lvmRoot); err != nil {
		t.Fatal(err)
	}
	wantArgvs(t, rec, findmntCmd(lvmRoot), lvsResolve)
	if err := lvmSetup(Config{LVMLV: "vg0/dr"})(t, rec).Check(ctx, lvmRoot); err != nil {
		t.Fatal(err)
	}

	// Another LV than the configured one.
	err := lvmSetup(Config{LVMLV: "vg0/backup"})(t, rec).Check(ctx, lvmRoot)
	if !errors.Is(err, ErrNotOnVolume) {
		t.Fatalf("other LV: %v", err)
	}
	wantErr(t, err, lvmRoot+" is not on an LVM logical volume", "on LV vg0/dr", "snapshot_lvm_lv is vg0/backup")

	// A plain disk: lvs says so, and its words are in the error.
	f := fake{
		findmntCmd("/data"): {out: findmntOut("/", "/dev/vda", "ext4", "rw,relatime")},
		"lvs --reportformat json -o vg_name,lv_name,pool_lv /dev/vda": {code: 5, out: lvsOut(),
			stderr: "Volume group \"vda\" not found\n  Cannot process volume group vda"},
	}
	err = lvmSetup(Config{})(t, &run.Recorder{Respond: f.respond}).Check(ctx, "/data")
	var nv *NotOnVolumeError
	if !errors.As(err, &nv) || nv.Found != "ext4 file system from /dev/vda mounted on /" {
		t.Fatalf("plain disk: %#v", err)
	}
	wantErr(t, err, "/data is not on an LVM logical volume", "/dev/vda", "exit status 5", `Volume group "vda" not found`)

	// Not even a device.
	f = fake{findmntCmd("/run/dr"): {out: findmntOut("/run", "tmpfs", "tmpfs", "rw,nosuid")}}
	rec = &run.Recorder{Respond: f.respond}
	err = lvmSetup(Config{})(t, rec).Check(ctx, "/run/dr")
	if !errors.Is(err, ErrNotOnVolume) {
		t.Fatalf("tmpfs: %v", err)
	}
	wantArgvs(t, rec, findmntCmd("/run/dr"))

	// Unparsable lvs output.
	f = lvmFake()
	f[lvsResolve] = answer{out: "  vg0 dr\n"}
	if err := lvmSetup(Config{})(t, &run.Recorder{Respond: f.respond}).Check(ctx, lvmRoot); !errors.Is(err, ErrToolOutput) {
		t.Errorf("text output: %v", err)
	}
}

func TestLVMCreate(t *testing.T) {
	ctx := context.Background()
	rec := &run.Recorder{Respond: lvmFake().respond}
	s, err := lvmSetup(Config{})(t, rec).Create(ctx, lvmRoot, 42)
	if err != nil {
		t.Fatal(err)
	}
	if s != lvmSnap(42) {
		t.Errorf("snapshot %+v, want %+v", s, lvmSnap(42))
	}
	wantArgvs(t, rec, findmntCmd(lvmRoot), lvsResolve, "lvcreate --snapshot --name brc-pre-42 --size 1G vg0/dr")

	rec = &run.Recorder{Respond: lvmFake().respond}
	if _, err := lvmSetup(Config{LVMSize: "20G"})(t, rec).Create(ctx, lvmRoot, 7); err != nil {
		t.Fatal(err)
	}
	wantArgvs(t, rec, findmntCmd(lvmRoot), lvsResolve, "lvcreate --snapshot --name brc-pre-7 --size 20G vg0/dr")

	// A thin LV: its snapshot is thin too and takes no size.
	f := lvmFake()
	f[lvsResolve] = answer{out: lvsOut(`{"vg_name":"vg0", "lv_name":"dr", "pool_lv":"pool0"}`)}
	rec = &run.Recorder{Respond: f.respond}
	if _, err := lvmSetup(Config{})(t, rec).Create(ctx, lvmRoot, 42); err != nil {
		t.Fatal(err)
	}
	wantArgvs(t, rec, findmntCmd(lvmRoot), lvsResolve, "lvcreate --snapshot --name brc-pre-42 vg0/dr")
}

func TestLVMRollback(t *testing.T) {
	ctx := context.Background()
	rec := &run.Recorder{Respond: lvmFake().respond}
	b := lvmSetup(Config{})(t, rec)
	if err := b.Rollback(ctx, lvmSnap(42)); err != nil {
		t.Fatal(err)
	}
	wantArgvs(t, rec,
		findmntCmd(lvmRoot), lvsResolve,
		"umount /srv/dr",
		"lvconvert --merge vg0/brc-pre-42",
		"lvchange -an vg0/dr",
		"lvchange -ay vg0/dr",
		lvmMountCmd,
	)

	// Busy: nothing changed.
	f := lvmFake()
	f["umount /srv/dr"] = answer{code: 32, stderr: "umount: /srv/dr: target is busy."}
	rec = &run.Recorder{Respond: f.respond}
	err := lvmSetup(Config{})(t, rec).Rollback(ctx, lvmSnap(42))
	wantErr(t, err, "umount /srv/dr: exit status 32: umount: /srv/dr: target is busy.")
	wantArgvs(t, rec, findmntCmd(lvmRoot), lvsResolve, "umount /srv/dr")

	// The merge is refused: mounted again as it was.
	f = lvmFake()
	f["lvconvert --merge vg0/brc-pre-42"] = answer{code: 5, stderr: "Unable to merge invalidated snapshot LV \"brc-pre-42\"."}
	rec = &run.Recorder{Respond: f.respond}
	err = lvmSetup(Config{})(t, rec).Rollback(ctx, lvmSnap(42))
	wantErr(t, err, "lvconvert --merge vg0/brc-pre-42: exit status 5", "invalidated")
	wantArgvs(t, rec, findmntCmd(lvmRoot), lvsResolve, "umount /srv/dr", "lvconvert --merge vg0/brc-pre-42", lvmMountCmd)

	// ... and if that mount fails too, both are reported.
	f[lvmMountCmd] = answer{code: 32, stderr: "mount: /srv/dr: wrong fs type"}
	err = lvmSetup(Config{})(t, &run.Recorder{Respond: f.respond}).Rollback(ctx, lvmSnap(42))
	wantErr(t, err, "invalidated", "/srv/dr left unmounted", "wrong fs type")

	// The origin is held open elsewhere: the merge waits for the next
	// activation, and the error says what to do.
	for _, cmd := range []string{"lvchange -an vg0/dr", "lvchange -ay vg0/dr"} {
		f = lvmFake()
		f[cmd] = answer{code: 5, stderr: "Logical volume vg0/dr in use."}
		rec = &run.Recorder{Respond: f.respond}
		err = lvmSetup(Config{})(t, rec).Rollback(ctx, lvmSnap(42))
		if !errors.Is(err, ErrMergePending) {
			t.Fatalf("%s failing: %v", cmd, err)
		}
		wantErr(t, err, cmd+": exit status 5: Logical volume vg0/dr in use.", "lvchange -an vg0/dr; lvchange -ay vg0/dr; mount /dev/mapper/vg0-dr /srv/dr")
		for _, a := range rec.Argvs() {
			if a == lvmMountCmd {
				t.Errorf("%s failing: mounted again with a merge pending", cmd)
			}
		}
	}

	// The root moved to another LV since the snapshot: refused.
	f = lvmFake()
	f[lvsResolve] = answer{out: lvsOut(`{"vg_name":"vg0", "lv_name":"dr2", "pool_lv":""}`)}
	rec = &run.Recorder{Respond: f.respond}
	err = lvmSetup(Config{})(t, rec).Rollback(ctx, lvmSnap(42))
	if !errors.Is(err, ErrNotOnVolume) {
		t.Fatalf("moved: %v", err)
	}
	wantArgvs(t, rec, findmntCmd(lvmRoot), lvsResolve)
}

func TestLVMRelease(t *testing.T) {
	ctx := context.Background()
	rec := &run.Recorder{Respond: lvmFake().respond}
	b := lvmSetup(Config{})(t, rec)
	if err := b.Release(ctx, lvmSnap(42)); err != nil {
		t.Fatal(err)
	}
	wantArgvs(t, rec, "lvremove -f vg0/brc-pre-42")

	rec = &run.Recorder{}
	b = lvmSetup(Config{})(t, rec)
	for _, s := range []Snapshot{
		{Kind: LVM, Name: "dr", Volume: "vg0/dr"},
		{Kind: LVM, Name: "brc-pre-1", JobID: 1, Volume: "dr"},
		{Kind: ZFS, Name: "brc-pre-1", JobID: 1, Volume: "vg0/dr"},
	} {
		if err := b.Release(ctx, s); !errors.Is(err, ErrNotOurs) {
			t.Errorf("Release(%+v): %v", s, err)
		}
	}
	wantArgvs(t, rec)
}

func TestLVMListPrune(t *testing.T) {
	ctx := context.Background()
	rec := &run.Recorder{Respond: lvmFake().respond}
	snaps, err := lvmSetup(Config{})(t, rec).List(ctx, lvmRoot)
	if err != nil {
		t.Fatal(err)
	}
	wantArgvs(t, rec, findmntCmd(lvmRoot), lvsResolve, lvsList)
	// 40 is 09:00 UTC: its time has another zone.
	want := []struct {
		id uint32
		at time.Time
	}{
		{40, time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)},
		{39, time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC)},
		{41, time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC)},
	}
	if len(snaps) != len(want) {
		t.Fatalf("listed %+v", snaps)
	}
	for i, w := range want {
		s := snaps[i]
		if s.JobID != w.id || !s.Created.Equal(w.at) || s.Path != "vg0/"+Name(w.id) || s.Volume != "vg0/dr" || s.Root != lvmRoot || s.Kind != LVM {
			t.Errorf("snapshot %d: %+v, want job %d at %v", i, s, w.id, w.at)
		}
	}

	rec = &run.Recorder{Respond: lvmFake().respond}
	if err := Prune(ctx, lvmSetup(Config{})(t, rec), lvmRoot, 1); err != nil {
		t.Fatal(err)
	}
	wantArgvs(t, rec, findmntCmd(lvmRoot), lvsResolve, lvsList, "lvremove -f vg0/brc-pre-40", "lvremove -f vg0/brc-pre-39")

	f := lvmFake()
	f[lvsList] = answer{out: lvsOut(`{"lv_name":"brc-pre-41", "origin":"dr", "lv_time":"1740826800"}`)}
	if _, err := lvmSetup(Config{})(t, &run.Recorder{Respond: f.respond}).List(ctx, lvmRoot); !errors.Is(err, ErrToolOutput) {
		t.Errorf("bad lv_time: %v", err)
	}
}

func TestLVMCommandFailures(t *testing.T) {
	ctx := context.Background()
	setup := lvmSetup(Config{})
	checkEachFailure(t, lvmFake(), setup, func(b Backend) error { return b.Check(ctx, lvmRoot) })
	checkEachFailure(t, lvmFake(), setup, func(b Backend) error { _, err := b.Create(ctx, lvmRoot, 42); return err })
	checkEachFailure(t, lvmFake(), setup, func(b Backend) error { return b.Rollback(ctx, lvmSnap(42)) })
	checkEachFailure(t, lvmFake(), setup, func(b Backend) error { return b.Release(ctx, lvmSnap(42)) })
	checkEachFailure(t, lvmFake(), setup, func(b Backend) error { _, err := b.List(ctx, lvmRoot); return err })
	checkEachFailure(t, lvmFake(), setup, func(b Backend) error { return Prune(ctx, b, lvmRoot, 1) })
}
