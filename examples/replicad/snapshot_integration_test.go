//go:build integration

package main

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// btrfsRoot makes a btrfs file system on a loop device with a subvolume
// for a target, and returns the subvolume. It fails under CI (CI=true)
// when the prerequisites are missing, and skips elsewhere.
func btrfsRoot(t *testing.T) string {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range []string{"mkfs.btrfs", "btrfs", "losetup", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		msg := "needs " + strings.Join(missing, ", ")
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	run := func(args ...string) string {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	img := filepath.Join(t.TempDir(), "btrfs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 256<<20); err != nil {
		t.Fatal(err)
	}
	run("mkfs.btrfs", "-q", img)
	dev := run("losetup", "--find", "--show", img)
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	mnt := t.TempDir()
	run("mount", dev, mnt)
	t.Cleanup(func() {
		if exec.Command("umount", mnt).Run() != nil {
			exec.Command("umount", "-l", mnt).Run()
		}
	})
	root := filepath.Join(mnt, "dr")
	run("btrfs", "subvolume", "create", root)
	return root
}

// describe lists every entry under root with type, mode, owner, mtime,
// content hash and link target.
func describe(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode %o uid %d gid %d", st.Mode, st.Uid, st.Gid)
		if !d.IsDir() {
			desc += fmt.Sprintf(" mtime %d", st.Mtim.Sec)
		}
		switch {
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" sha %x", sha256.Sum256(b))
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A job that fails mid-way (its volume ends inside it) is rolled back on a
// btrfs target: the tree is byte- and metadata-identical to its state
// before that job, and the snapshots are pruned to snapshot_keep.
func TestSnapshotRollbackBtrfs(t *testing.T) {
	root := btrfsRoot(t)
	dir := t.TempDir()
	conf := writeConf(t, dir, "targets = "+root+"\nsnapshot_backend = btrfs\nsnapshot_keep = 1\n"+
		"state_dir = "+dir+"/state\nretry_attempts = 0\n")
	if out, e, rc := replicad(t, "replicate", "-c", conf, accurate+"1-full.vol"); rc != 0 {
		t.Fatalf("Full: rc %d\n%s\n%s", rc, out, e)
	}
	before := describe(t, root)
	if len(before) < 10 {
		t.Fatalf("only %d entries after the Full", len(before))
	}

	// A second job whose volume ends inside it: the plain Full, cut after
	// its third block (bls: block 2 ends at 193762), once 20 of its files
	// went by.
	plain := fixtures + "/bacula-9.6.7-plain-md5.vol"
	vol, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "bacula-9.6.7-plain-md5.vol")
	if err := os.WriteFile(cut, vol[:193762], 0o600); err != nil {
		t.Fatal(err)
	}
	out, e, rc := replicad(t, "replicate", "-c", conf, cut)
	if rc == 0 {
		t.Fatalf("the cut job succeeded:\n%s\n%s", out, e)
	}
	if !strings.Contains(e, "rolled back") {
		t.Errorf("no rollback reported:\n%s", e)
	}
	after := describe(t, root)
	for p, d := range before {
		if after[p] != d {
			t.Errorf("%s: before the failed job %q, after its rollback %q", p, d, after[p])
		}
	}
	for p, d := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: left by the failed job: %s", p, d)
		}
	}

	// With the whole volume, the job replays (the catalog did not record
	// it done) and the Full is not sent again; the snapshots are pruned
	// to one.
	if out, e, rc := replicad(t, "replicate", "-c", conf, accurate+"1-full.vol", plain); rc != 0 ||
		!strings.Contains(out, "jobs 1 done") {
		t.Fatalf("replay: rc %d\n%s\n%s", rc, out, e)
	}
	ref := filepath.Join(dir, "ref")
	if _, e, rc := replicad(t, "extract", "-q", "-o", ref, accurate+"1-full.vol", plain); rc != 0 {
		t.Fatal(e)
	}
	want, got := describe(t, ref), describe(t, root)
	for p, d := range want {
		if p != "." && p != "tmp" && p != "tmp/brc-fixture-src" && got[p] != d {
			t.Errorf("after the replay, %s: %q, want %q", p, got[p], d)
		}
	}
	snaps, err := os.ReadDir(filepath.Join(filepath.Dir(root), ".brc-snapshots", filepath.Base(root)))
	if err != nil || len(snaps) != 1 {
		t.Errorf("snapshots kept: %v %v", snaps, err)
	}
}
