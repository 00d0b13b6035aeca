//go:build integration

package snapshot

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openbrc/brc/internal/run"
)

// requireBtrfsLab fails under CI (CI=true), where the prerequisites are
// installed by .ci/run and their absence is a bug, and skips elsewhere.
func requireBtrfsLab(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range []string{"mkfs.btrfs", "btrfs", "losetup", "mount", "umount", "findmnt"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		missing = append(missing, "/dev/loop-control")
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("btrfs integration test needs %s (apt-get install btrfs-progs util-linux mount, run as root)", strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// sh runs a setup command through the real runner.
func sh(t *testing.T, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := run.Exec{}.Run(ctx, run.Cmd{Argv: argv})
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(res.Stdout))
}

// btrfsLab makes a 256 MiB btrfs on a loop device, mounted on a temporary
// directory, and returns the mount point. Unmounting and detaching are
// registered before anything can fail after them.
func btrfsLab(t *testing.T) string {
	requireBtrfsLab(t)
	img := filepath.Join(t.TempDir(), "btrfs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(256 << 20); err != nil { // sparse
		t.Fatal(err)
	}
	f.Close()
	sh(t, "mkfs.btrfs", "-q", img)
	dev := sh(t, "losetup", "--find", "--show", img)
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	mnt := t.TempDir()
	sh(t, "mount", dev, mnt)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
			exec.Command("umount", "-l", mnt).Run()
		}
	})
	return mnt
}

// tree describes every entry under root: type, mode, owner, mtime, size,
// content, symbolic link target and extended attributes.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode %o uid %d gid %d size %d", st.Mode, st.Uid, st.Gid, st.Size)
		if st.Mode&unix.S_IFMT != unix.S_IFDIR { // a directory's mtime moves with its entries, checked through them
			desc += fmt.Sprintf(" mtime %d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
		}
		switch {
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" content %x", b)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		buf := make([]byte, 4096)
		if n, err := unix.Llistxattr(p, buf); err == nil {
			for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
				if name == "" {
					continue
				}
				v := make([]byte, 4096)
				vn, err := unix.Lgetxattr(p, name, v)
				if err != nil {
					return err
				}
				desc += fmt.Sprintf(" xattr %s=%q", name, v[:vn])
			}
		}
		m[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameTree(t *testing.T, got, want map[string]string) {
	t.Helper()
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s missing after rollback", p)
		} else if g != w {
			t.Errorf("%s differs after rollback:\n\tgot  %.300s\n\twant %.300s", p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s is left after rollback", p)
		}
	}
}

func TestBtrfsIntegration(t *testing.T) {
	mnt := btrfsLab(t)
	ctx := context.Background()
	root := filepath.Join(mnt, "target")
	sh(t, "btrfs", "subvolume", "create", root)

	b, err := New(Config{Backend: Btrfs, Timeout: 30 * time.Second}, run.Exec{})
	if err != nil {
		t.Fatal(err)
	}

	// Check: the subvolume passes; the mount point, a plain directory and
	// a directory on another file system are configuration errors.
	if err := b.Check(ctx, root); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(mnt, "plain")
	os.Mkdir(plain, 0o755)
	for _, p := range []string{mnt, plain, t.TempDir()} {
		if err := b.Check(ctx, p); !errors.Is(err, ErrNotOnVolume) {
			t.Errorf("Check(%s): %v", p, err)
		} else {
			t.Logf("Check(%s): %v", p, err)
		}
	}

	// The state before the job.
	big := make([]byte, 3<<20+17)
	rand.Read(big)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "a/b/c"), 0o750))
	must(os.WriteFile(filepath.Join(root, "a/keep.txt"), []byte("unchanged\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "a/b/change.txt"), []byte("old content\n"), 0o600))
	must(os.WriteFile(filepath.Join(root, "a/b/c/big.bin"), big, 0o644))
	must(os.WriteFile(filepath.Join(root, "delete.me"), []byte("doomed"), 0o644))
	must(os.WriteFile(filepath.Join(root, "empty"), nil, 0o444))
	must(os.Symlink("a/keep.txt", filepath.Join(root, "link")))
	must(unix.Lsetxattr(filepath.Join(root, "a/keep.txt"), "user.brc", []byte("x1"), 0))
	must(os.Chmod(root, 0o711))
	before := tree(t, root)

	s, err := b.Create(ctx, root, 42)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(mnt, ".brc-snapshots", "target", "brc-pre-42")
	if s.Path != want || s.Name != "brc-pre-42" || s.JobID != 42 || s.Root != root {
		t.Fatalf("snapshot %+v", s)
	}
	if _, err := b.Create(ctx, root, 42); !errors.Is(err, ErrExists) {
		t.Errorf("second snapshot of the same name: %v", err)
	}

	// The job: modify, delete, add, change metadata.
	must(os.WriteFile(filepath.Join(root, "a/b/change.txt"), []byte("new content, longer than before\n"), 0o600))
	must(os.Remove(filepath.Join(root, "delete.me")))
	must(os.WriteFile(filepath.Join(root, "added"), []byte("new"), 0o644))
	must(os.MkdirAll(filepath.Join(root, "newdir/x"), 0o755))
	f, err := os.OpenFile(filepath.Join(root, "a/b/c/big.bin"), os.O_WRONLY, 0)
	must(err)
	f.WriteAt([]byte("overwritten in the middle"), 1<<20)
	f.Close()
	must(os.Chmod(filepath.Join(root, "a/keep.txt"), 0o600))
	must(unix.Lsetxattr(filepath.Join(root, "a/keep.txt"), "user.brc", []byte("x2"), 0))
	must(os.Remove(filepath.Join(root, "link")))
	must(os.Symlink("elsewhere", filepath.Join(root, "link")))
	if len(tree(t, root)) == len(before) {
		t.Log("(same number of entries)")
	}

	// A process that sits inside the old root keeps seeing it.
	held, err := os.Open(filepath.Join(root, "a"))
	must(err)
	defer held.Close()

	if err := b.Rollback(ctx, s); err != nil {
		t.Fatal(err)
	}
	sameTree(t, tree(t, root), before)
	if _, err := os.Lstat(root + ".brc-rollback"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("replaced tree left: %v", err)
	}
	if err := b.Check(ctx, root); err != nil { // still a subvolume
		t.Errorf("after rollback: %v", err)
	}
	if _, err := held.ReadDir(-1); err == nil {
		t.Log("a directory open in the replaced tree is still readable")
	}

	if err := b.Release(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(s.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("snapshot still there after Release: %v", err)
	}
	if l, err := b.List(ctx, root); err != nil || len(l) != 0 {
		t.Errorf("List after Release: %v %v", l, err)
	}

	// Prune: keep the newest 2 of 4, oldest removed first; snapshots not
	// named by us stay.
	for _, id := range []uint32{10, 11, 12, 13} {
		if _, err := b.Create(ctx, root, id); err != nil {
			t.Fatal(err)
		}
	}
	sh(t, "btrfs", "subvolume", "snapshot", "-r", root, filepath.Join(mnt, ".brc-snapshots", "target", "manual"))
	l, err := b.List(ctx, root)
	if err != nil || len(l) != 4 {
		t.Fatalf("List: %v %v", l, err)
	}
	for i, s := range l {
		if s.JobID != uint32(10+i) || s.Created.IsZero() || time.Since(s.Created) > time.Hour {
			t.Errorf("listed %d: %+v", i, s)
		}
	}
	if err := Prune(ctx, b, root, 2); err != nil {
		t.Fatal(err)
	}
	names := func() []string {
		ents, err := os.ReadDir(filepath.Join(mnt, ".brc-snapshots", "target"))
		must(err)
		var n []string
		for _, e := range ents {
			n = append(n, e.Name())
		}
		return n
	}
	if got := strings.Join(names(), " "); got != "brc-pre-12 brc-pre-13 manual" {
		t.Errorf("after Prune(2): %s", got)
	}

	// The Guard: a failed job is rolled back and its snapshot released; a
	// successful one keeps its snapshot, pruned to keep.
	g, err := Before(ctx, b, root, 20, 2)
	must(err)
	must(os.WriteFile(filepath.Join(root, "added by 20"), []byte("x"), 0o644))
	must(g.Done(ctx, false))
	sameTree(t, tree(t, root), before)
	if got := strings.Join(names(), " "); got != "brc-pre-12 brc-pre-13 manual" {
		t.Errorf("after a failed job: %s", got)
	}
	g, err = Before(ctx, b, root, 21, 2)
	must(err)
	must(os.WriteFile(filepath.Join(root, "added by 21"), []byte("x"), 0o644))
	must(g.Done(ctx, true))
	if _, err := os.Stat(filepath.Join(root, "added by 21")); err != nil {
		t.Errorf("successful job's file: %v", err)
	}
	if got := strings.Join(names(), " "); got != "brc-pre-13 brc-pre-21 manual" {
		t.Errorf("after a successful job: %s", got)
	}
}
