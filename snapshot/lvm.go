package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// lvm snapshots the logical volume a target root is mounted from.
type lvm struct {
	c    cmds
	lv   string // snapshot_lvm_lv, "" to take the LV found
	size string
	now  func() time.Time
}

// lvInfo is the LV behind a root and how it is mounted.
type lvInfo struct {
	VG, LV string
	Thin   bool // a thin LV: its snapshots take no --size
	Mount  mount
}

func (l lvInfo) name() string { return l.VG + "/" + l.LV }

func (b *lvm) Kind() Kind { return LVM }

// resolve finds the LV root is mounted from: findmnt gives the device,
// lvs its VG and LV.
func (b *lvm) resolve(ctx context.Context, root string) (lvInfo, error) {
	if err := checkRoot(root); err != nil {
		return lvInfo{}, err
	}
	m, err := b.c.findmnt(ctx, root)
	if err != nil {
		return lvInfo{}, err
	}
	if !strings.HasPrefix(m.Source, "/dev/") {
		return lvInfo{}, &NotOnVolumeError{Root: root, Kind: LVM, Found: m.String()}
	}
	out, err := b.c.run(ctx, "lvs", "--reportformat", "json", "-o", "vg_name,lv_name,pool_lv", m.Source)
	if exited(err) { // lvs refuses a device that is no LV: the answer we asked for
		return lvInfo{}, &NotOnVolumeError{Root: root, Kind: LVM, Found: m.String(), Err: err}
	}
	if err != nil {
		return lvInfo{}, err
	}
	lvs, err := parseLVs(out)
	if err != nil {
		return lvInfo{}, err
	}
	if len(lvs) != 1 {
		return lvInfo{}, &NotOnVolumeError{Root: root, Kind: LVM, Found: m.String() + fmt.Sprintf(", which lvs reports as %d LVs", len(lvs))}
	}
	info := lvInfo{VG: lvs[0].VG, LV: lvs[0].LV, Thin: lvs[0].Pool != "", Mount: m}
	if b.lv != "" && b.lv != info.name() {
		return lvInfo{}, &NotOnVolumeError{Root: root, Kind: LVM,
			Found: fmt.Sprintf("it is on LV %s (%s), but snapshot_lvm_lv is %s", info.name(), m, b.lv)}
	}
	return info, nil
}

// lvRow is a row of lvs --reportformat json.
type lvRow struct {
	VG     string `json:"vg_name"`
	LV     string `json:"lv_name"`
	Pool   string `json:"pool_lv"`
	Origin string `json:"origin"`
	Time   string `json:"lv_time"`
}

func parseLVs(out []byte) ([]lvRow, error) {
	var v struct {
		Report []struct {
			LV []lvRow `json:"lv"`
		} `json:"report"`
	}
	if err := json.Unmarshal(out, &v); err != nil || len(v.Report) != 1 {
		return nil, fmt.Errorf("%w: lvs: %q", ErrToolOutput, clip(out))
	}
	return v.Report[0].LV, nil
}

func (b *lvm) Check(ctx context.Context, root string) error {
	_, err := b.resolve(ctx, root)
	return err
}

func (b *lvm) Create(ctx context.Context, root string, jobID uint32) (Snapshot, error) {
	info, err := b.resolve(ctx, root)
	if err != nil {
		return Snapshot{}, err
	}
	name := Name(jobID)
	argv := []string{"lvcreate", "--snapshot", "--name", name}
	if !info.Thin {
		argv = append(argv, "--size", b.size)
	}
	argv = append(argv, info.name())
	if _, err := b.c.run(ctx, argv...); err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Kind: LVM, Name: name, Volume: info.name(), Path: info.VG + "/" + name,
		Root: root, JobID: jobID, Created: b.now()}, nil
}

// path is the snapshot LV, rebuilt from the origin's VG and the checked
// name rather than taken from s.Path.
func (b *lvm) path(s Snapshot) (string, error) {
	if err := checkOurs(s, LVM); err != nil {
		return "", err
	}
	vg, _, ok := strings.Cut(s.Volume, "/")
	if !ok || vg == "" {
		return "", fmt.Errorf("%w: volume %q is not vg/lv", ErrNotOurs, s.Volume)
	}
	return vg + "/" + s.Name, nil
}

// Rollback merges the snapshot into its origin. A merge into an open
// origin only starts when the origin is next activated, so the origin is
// unmounted first and deactivated and activated after: umount, lvconvert
// --merge, lvchange -an, lvchange -ay, mount again as it was. Deactivating
// fails if anything else still holds the origin open; the merge is then
// pending (ErrMergePending) and the origin is left unmounted, so nothing
// writes to data the merge will overwrite.
func (b *lvm) Rollback(ctx context.Context, s Snapshot) error {
	snap, err := b.path(s)
	if err != nil {
		return err
	}
	info, err := b.resolve(ctx, s.Root)
	if err != nil {
		return err
	}
	if info.name() != s.Volume {
		return &NotOnVolumeError{Root: s.Root, Kind: LVM,
			Found: fmt.Sprintf("it is now on LV %s, but the snapshot is of %s", info.name(), s.Volume)}
	}
	m := info.Mount
	remount := func() error {
		argv := []string{"mount", "-t", m.FSType}
		if m.Options != "" {
			argv = append(argv, "-o", m.Options)
		}
		_, err := b.c.run(ctx, append(argv, m.Source, m.Target)...)
		return err
	}
	// Unmounting first: if it fails (busy), nothing has changed yet.
	if _, err := b.c.run(ctx, "umount", m.Target); err != nil {
		return err
	}
	if _, err := b.c.run(ctx, "lvconvert", "--merge", snap); err != nil {
		// No merge was scheduled: put the target back as it was.
		if rerr := remount(); rerr != nil {
			return errors.Join(err, fmt.Errorf("snapshot: %s left unmounted: %w", m.Target, rerr))
		}
		return err
	}
	pending := func(err error) error {
		return fmt.Errorf("%w: %s into %s, left unmounted from %s; to finish, stop what holds %s open, "+
			"then run lvchange -an %s; lvchange -ay %s; mount %s %s: %w",
			ErrMergePending, snap, s.Volume, m.Target, s.Volume, s.Volume, s.Volume, m.Source, m.Target, err)
	}
	if _, err := b.c.run(ctx, "lvchange", "-an", s.Volume); err != nil {
		return pending(err)
	}
	if _, err := b.c.run(ctx, "lvchange", "-ay", s.Volume); err != nil {
		return pending(err)
	}
	// The origin shows the merged content as soon as it is active, while
	// the merge copies in the background; the snapshot LV goes away when
	// the copy is done.
	if err := remount(); err != nil {
		return fmt.Errorf("snapshot: %s merged into %s, but mounting it on %s failed: %w", snap, s.Volume, m.Target, err)
	}
	return nil
}

func (b *lvm) Release(ctx context.Context, s Snapshot) error {
	snap, err := b.path(s)
	if err != nil {
		return err
	}
	_, err = b.c.run(ctx, "lvremove", "-f", snap)
	return err
}

// List runs lvs on the origin's VG and keeps the brc-pre snapshots whose
// origin is the root's LV.
func (b *lvm) List(ctx context.Context, root string) ([]Snapshot, error) {
	info, err := b.resolve(ctx, root)
	if err != nil {
		return nil, err
	}
	out, err := b.c.run(ctx, "lvs", "--reportformat", "json", "-o", "lv_name,origin,lv_time", info.VG)
	if err != nil {
		return nil, err
	}
	rows, err := parseLVs(out)
	if err != nil {
		return nil, err
	}
	var snaps []Snapshot
	for _, r := range rows {
		id, ok := parseName(r.LV)
		if !ok || r.Origin != info.LV {
			continue
		}
		// lvs' default report/time_format.
		t, err := time.Parse("2006-01-02 15:04:05 -0700", r.Time)
		if err != nil {
			return nil, fmt.Errorf("%w: lvs: lv_time %q of %s", ErrToolOutput, r.Time, r.LV)
		}
		snaps = append(snaps, Snapshot{Kind: LVM, Name: r.LV, Volume: info.name(), Path: info.VG + "/" + r.LV,
			Root: root, JobID: id, Created: t})
	}
	sortSnapshots(snaps)
	return snaps, nil
}
