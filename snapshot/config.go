package snapshot

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Defaults for the Config fields left zero.
const (
	DefaultKeep    = 3
	DefaultTimeout = 2 * time.Minute
	DefaultLVMSize = "1G"
)

// Config is the snapshot configuration of one replication target. Each
// field says its configuration key; a zero field takes its default. The
// lvm, zfs and btrfs fields name this target's volume, so a daemon with
// several targets has one Config (and one Backend) per target.
type Config struct {
	// Backend (snapshot_backend): lvm, zfs, btrfs or none; "" means none.
	Backend Kind
	// Keep (snapshot_keep): how many brc-pre snapshots of the target to
	// keep after successful jobs, the newest; 0 means DefaultKeep.
	Keep int
	// Timeout (snapshot_timeout): the limit for each command run; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// LVMLV (snapshot_lvm_lv): "vg/lv", the logical volume the target
	// root must be on. "" means whatever LV the root is mounted from.
	LVMLV string
	// LVMSize (snapshot_lvm_size): the copy-on-write space of a thick LVM
	// snapshot, as lvcreate --size takes it ("512M", "2G"); "" means
	// DefaultLVMSize. A job that changes more than this invalidates its
	// snapshot, which then cannot roll back. Thin LVs take no size.
	LVMSize string
	// ZFSDataset (snapshot_zfs_dataset): the dataset the target root must
	// be on. "" means whatever dataset the root is mounted from.
	ZFSDataset string
	// BtrfsDir (snapshot_btrfs_dir): the directory that holds this
	// target's snapshots, on the same btrfs file system as the root.
	// "" means <parent of root>/.brc-snapshots/<basename of root>.
	BtrfsDir string

	// Now is the clock that dates created snapshots; nil means time.Now.
	// Not a configuration key: tests set it.
	Now func() time.Time
}

// lvmName is the syntax LVM accepts for VG and LV names.
var lvmName = regexp.MustCompile(`^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$`)

// lvmSize is lvcreate --size: a number, optionally with a unit.
var lvmSize = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?[bBsSkKmMgGtTpPeE]?$`)

// Validate reports the first problem with cfg, wrapping ErrUnknownBackend
// for an unknown snapshot_backend and ErrConfig for anything else,
// including a key of another backend set (most likely a backend changed
// without its keys). It runs nothing: whether the volume exists is for
// Backend.Check.
func (c Config) Validate() error {
	switch c.Backend {
	case "", None, LVM, ZFS, Btrfs:
	default:
		return fmt.Errorf("%w %q (want lvm, zfs, btrfs or none)", ErrUnknownBackend, string(c.Backend))
	}
	if c.Keep < 0 {
		return fmt.Errorf("%w: snapshot_keep %d is negative", ErrConfig, c.Keep)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%w: snapshot_timeout %v is negative", ErrConfig, c.Timeout)
	}
	if c.LVMLV != "" {
		vg, lv, ok := strings.Cut(c.LVMLV, "/")
		if !ok || !lvmName.MatchString(vg) || !lvmName.MatchString(lv) {
			return fmt.Errorf("%w: snapshot_lvm_lv %q is not vg/lv", ErrConfig, c.LVMLV)
		}
	}
	if c.LVMSize != "" && !lvmSize.MatchString(c.LVMSize) {
		return fmt.Errorf("%w: snapshot_lvm_size %q is not a size such as 512M or 2G", ErrConfig, c.LVMSize)
	}
	if d := c.ZFSDataset; d != "" && (strings.ContainsAny(d, "@# \t\n") || strings.HasPrefix(d, "/") || strings.HasSuffix(d, "/")) {
		return fmt.Errorf("%w: snapshot_zfs_dataset %q is not a dataset name such as tank/dr", ErrConfig, d)
	}
	if d := c.BtrfsDir; d != "" && (!filepath.IsAbs(d) || filepath.Clean(d) != d) {
		return fmt.Errorf("%w: snapshot_btrfs_dir %q is not an absolute, clean path", ErrConfig, d)
	}
	for _, k := range []struct {
		key, val string
		kind     Kind
	}{
		{"snapshot_lvm_lv", c.LVMLV, LVM},
		{"snapshot_lvm_size", c.LVMSize, LVM},
		{"snapshot_zfs_dataset", c.ZFSDataset, ZFS},
		{"snapshot_btrfs_dir", c.BtrfsDir, Btrfs},
	} {
		if k.val != "" && c.Backend != k.kind {
			return fmt.Errorf("%w: %s is set but snapshot_backend is %q", ErrConfig, k.key, string(c.backend()))
		}
	}
	return nil
}

func (c Config) backend() Kind {
	if c.Backend == "" {
		return None
	}
	return c.Backend
}

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	c.Backend = c.backend()
	if c.Keep == 0 {
		c.Keep = DefaultKeep
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.LVMSize == "" {
		c.LVMSize = DefaultLVMSize
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
