// Package snapshot takes a snapshot of a replication target before a job's
// first write to it, and rolls the target back to that snapshot when the
// job fails, so a failed job never leaves a half-replicated tree behind.
//
// The replication engine uses a Guard per job and target:
//
//	g, err := snapshot.Before(ctx, backend, root, jobID, cfg.Keep)
//	// ... replicate; close every file in root ...
//	err = g.Done(ctx, jobErr == nil)
//
// Done with ok keeps the snapshot and prunes the target's older ones to
// the newest snapshot_keep; Done after a failure rolls back and releases
// the snapshot. If the rollback itself fails, Done returns a
// *RollbackError (ErrRollback) and the snapshot is kept for the operator:
// it is never deleted.
//
// # Configuration
//
// Config holds one target's settings. Its keys, for the configuration
// parser (zero or absent means the default):
//
//	snapshot_backend      lvm, zfs, btrfs or none (default none)
//	snapshot_keep         brc-pre snapshots kept after successful jobs (default 3)
//	snapshot_timeout      limit for each command run, a duration (default 2m)
//	snapshot_lvm_lv       vg/lv the target must be on (default: the LV it is mounted from)
//	snapshot_lvm_size     copy-on-write space of a thick LVM snapshot (default 1G)
//	snapshot_zfs_dataset  dataset the target must be on (default: the one it is mounted from)
//	snapshot_btrfs_dir    directory of the target's snapshots, on the same btrfs file system
//	                      (default <parent of root>/.brc-snapshots/<basename of root>)
//
// Call Backend.Check at start: a target root that is not on the configured
// kind of volume is a configuration error (ErrNotOnVolume), which names
// the path and what it is on instead.
//
// # Names
//
// Snapshots are named brc-pre-<jobid>. List and Prune only ever see names
// of exactly that form, so snapshots made by people or other tools are
// left alone. Prune removes the oldest first, by creation time.
//
// # What each backend runs
//
// Every command goes through a run.Runner, each under snapshot_timeout. A
// failure is a *CommandError naming the command, its exit status and its
// stderr. "ROOT" is the target root. Check and Create, and List of lvm and
// zfs and Rollback of lvm, first find the file system ROOT is on with
// findmnt -J -o TARGET,SOURCE,FSTYPE,OPTIONS --target ROOT; nothing is
// remembered between calls, so a change of mounts is always seen.
//
// A snapshot covers the whole volume: an LV or dataset that holds more than
// the target root is rolled back whole, so give each target its own volume.
//
// lvm: lvs --reportformat json -o vg_name,lv_name,pool_lv DEVICE finds the
// LV (VG/LV) of the mount's device.
//
//	create    lvcreate --snapshot --name brc-pre-N --size SIZE VG/LV  (no --size for a thin LV)
//	rollback  umount MOUNTPOINT; lvconvert --merge VG/brc-pre-N; lvchange -an VG/LV;
//	          lvchange -ay VG/LV; mount -t FSTYPE -o OPTIONS DEVICE MOUNTPOINT
//	release   lvremove -f VG/brc-pre-N
//	list      lvs --reportformat json -o lv_name,origin,lv_time VG
//
// LVM merges a snapshot into an open (mounted) origin only when the origin
// is next activated, so Rollback unmounts the file system first, merges,
// deactivates and activates the LV (which starts the merge; the origin
// shows the merged content at once while the copy goes on in the
// background), and mounts it again as it was. The merge consumes the
// snapshot: there is nothing to release after it. If the unmount fails
// (busy), nothing has changed. If deactivation fails because something
// else holds the LV open, the merge stays pending (ErrMergePending) and the
// file system stays unmounted; the operator must stop what holds it, run
// lvchange -an VG/LV and lvchange -ay VG/LV, and mount it again (a reboot
// also completes the merge). A thick snapshot that fills its
// snapshot_lvm_size is invalidated by LVM and cannot be merged.
//
// zfs: the mount's source is the dataset DS (the file system type must be
// zfs).
//
//	create    zfs snapshot DS@brc-pre-N
//	rollback  zfs rollback -r DS@brc-pre-N   (destroys snapshots newer than it)
//	release   zfs destroy DS@brc-pre-N
//	list      zfs list -H -p -t snapshot -o name,creation -d 1 DS
//
// btrfs: ROOT must be a subvolume (btrfs subvolume show ROOT succeeds)
// that is not itself a mount point, on a mounted btrfs file system; the
// snapshot directory SNAPDIR is made (mode 0700) on the same file system.
//
//	create    btrfs subvolume snapshot -r ROOT SNAPDIR/brc-pre-N
//	rollback  btrfs subvolume snapshot SNAPDIR/brc-pre-N ROOT.brc-rollback;
//	          renameat2(ROOT.brc-rollback, ROOT, RENAME_EXCHANGE);
//	          btrfs subvolume delete ROOT.brc-rollback
//	release   btrfs subvolume delete SNAPDIR/brc-pre-N
//	list      the brc-pre-N entries of SNAPDIR; btrfs subvolume show for each creation time
//
// The exchange is atomic: ROOT always holds either the job's tree or the
// restored one. A process whose working directory or open files are in
// the old tree keeps them and sees a deleted subvolume; it must reopen
// paths under ROOT to see the restored tree. A ROOT.brc-rollback left by
// an interrupted rollback is deleted before the next. Subvolumes nested
// inside ROOT are not part of its snapshots.
//
// # Tests
//
// Unit tests check the exact commands with run.Recorder. The btrfs
// integration test (build tag integration) runs on a loop device and needs
// root and the Debian packages btrfs-progs and util-linux (losetup, mount).
package snapshot
