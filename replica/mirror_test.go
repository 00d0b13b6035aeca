package replica

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/extract"
)

// scan describes every entry under root: type, mode, owner, mtime, size,
// content hash, link target and xattrs.
func scan(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		if strings.HasPrefix(d.Name(), extract.TempPrefix) {
			t.Errorf("temporary file left: %s", rel)
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		desc := fmt.Sprintf("mode=%o uid=%d gid=%d", st.Mode, st.Uid, st.Gid)
		// "." and the directories above the FileSet's top are made at
		// restore time.
		if d.Type()&fs.ModeSymlink == 0 && rel != "." && rel != "tmp" && rel != "tmp/brc-fixture-src" {
			desc += fmt.Sprintf(" mtime=%d", st.Mtim.Sec)
		}
		switch d.Type() & fs.ModeType {
		case 0:
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			desc += fmt.Sprintf(" size=%d sha=%s blocks<=%v", st.Size, sha(b)[:16], st.Blocks*512 <= st.Size+8192)
		case fs.ModeSymlink:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		}
		sz, _ := unix.Llistxattr(p, nil)
		if sz > 0 {
			buf := make([]byte, sz)
			n, _ := unix.Llistxattr(p, buf)
			names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
			slices.Sort(names)
			for _, name := range names {
				v := make([]byte, 4096)
				m, _ := unix.Lgetxattr(p, name, v)
				desc += fmt.Sprintf(" %s=%x", name, v[:max(m, 0)])
			}
		}
		out[rel] = desc
		return nil
	})
	return out
}

// ctimes returns the inode change time of every entry under root, by
// path.
func ctimes(t *testing.T, root string) map[string]unix.Timespec {
	t.Helper()
	out := map[string]unix.Timespec{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		out[p] = st.Ctim
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func extractRef(t *testing.T, paths []string) string {
	t.Helper()
	dir := tempDir(t)
	files := bacularec.NewFiles(bacularec.NewMultiReader(bacularec.FileVolumes(paths...)))
	sum, err := extract.Run(context.Background(), files, dir, extract.Options{Deletions: true}, extract.RunOptions{})
	if err != nil || sum.Failed() {
		t.Fatalf("extract: %v\n%s", err, sum)
	}
	return dir
}

func mirrorRun(t *testing.T, root string, opt MirrorOptions, paths ...string) (*Mirror, *TargetSummary) {
	t.Helper()
	m := NewMirror(root, opt)
	e := &Engine{Dests: []Destination{{Name: "m", Target: m}}}
	sum, err := e.Run(context.Background(), source(paths...))
	if err != nil {
		t.Fatal(err)
	}
	if ts := sum.Targets[0]; !ts.OK() {
		t.Fatalf("target: %+v", ts)
	}
	return m, sum.Targets[0]
}

func diffTrees(t *testing.T, want, got map[string]string) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			t.Errorf("%s:\n  extract: %s\n  mirror:  %s", k, want[k], got[k])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: only in the mirror: %s", k, got[k])
		}
	}
}

// The mirror holds what "replicad extract" (checked against bextract)
// restores: content, holes, owners, modes, times, links, ACLs, xattrs,
// and the accurate Full, Incremental, Differential chain with deletions.
func TestMirrorMatchesExtract(t *testing.T) {
	for _, set := range [][]string{
		{"plain-md5"}, {"lzo-md5"}, {"sparse-gzip-sha256"}, {"aclxattr-md5"}, {"span.1", "span.2"},
		{"accurate-1-full", "accurate-2-incr", "accurate-3-diff"},
	} {
		t.Run(strings.Join(set, "+"), func(t *testing.T) {
			paths := vols(set...)
			want := scan(t, extractRef(t, paths))
			root := tempDir(t)
			mirrorRun(t, root, MirrorOptions{Verify: true}, paths...)
			diffTrees(t, want, scan(t, root))
		})
	}
}

// skip_unchanged: the same Full again writes no content, with the index
// (files not even read) and without it (compared as they stream by); a
// file changed behind the target's back is noticed and rewritten.
func TestMirrorSkipUnchanged(t *testing.T) {
	paths := vols("sparse-md5")
	want := scan(t, extractRef(t, paths))
	cat, err := OpenCatalog(tempDir(t) + "/c.db")
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	root := tempDir(t)
	opt := MirrorOptions{SkipUnchanged: true, Index: cat.Index("m")}
	m, _ := mirrorRun(t, root, opt, paths...)
	first := m.Stats()
	if first.Skipped != 0 || first.Bytes == 0 {
		t.Fatalf("first run %+v", first)
	}
	before := ctimes(t, root)
	m, _ = mirrorRun(t, root, opt, paths...)
	second := m.Stats()
	if second.Bytes != 0 || second.Skipped == 0 {
		t.Fatalf("second run (index) %+v", second)
	}
	diffTrees(t, want, scan(t, root))
	// Not even metadata was written: no inode changed.
	after := ctimes(t, root)
	for p, c := range before {
		if after[p] != c {
			t.Errorf("%s: changed by the unchanged run: ctime %v, was %v", p, after[p], c)
		}
	}

	// Without the index: compared by reading.
	m, _ = mirrorRun(t, root, MirrorOptions{SkipUnchanged: true}, paths...)
	if s := m.Stats(); s.Bytes != 0 || s.Skipped == 0 {
		t.Fatalf("third run (no index) %+v", s)
	}

	// Changed behind our back, same size: the stat no longer matches the
	// index, the content is compared and the file rewritten.
	var victim string
	var size int64
	for rel, d := range want {
		if strings.Contains(d, "size=") && !strings.Contains(d, "size=0 ") {
			fi, _ := os.Stat(filepath.Join(root, rel))
			if fi.Size() > size {
				victim, size = rel, fi.Size()
			}
		}
	}
	f, err := os.OpenFile(filepath.Join(root, victim), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("tampered"), size/2)
	f.Close()
	m, _ = mirrorRun(t, root, opt, paths...)
	if s := m.Stats(); s.Bytes == 0 || s.Skipped != second.Skipped-1 {
		t.Errorf("after tampering %+v (first %+v)", s, first)
	}
	diffTrees(t, want, scan(t, root))
}

// delete_removed after an OK Full removes what the Full did not contain.
func TestMirrorDeleteRemoved(t *testing.T) {
	paths := vols("plain-md5")
	want := scan(t, extractRef(t, paths))
	root := tempDir(t)
	mirrorRun(t, root, MirrorOptions{}, paths...)
	extra := []string{"stray.txt", "olddir/sub/file"}
	for _, e := range extra {
		p := filepath.Join(root, e)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o644)
	}
	// Without the option they stay.
	mirrorRun(t, root, MirrorOptions{}, paths...)
	if _, err := os.Stat(filepath.Join(root, "stray.txt")); err != nil {
		t.Fatal(err)
	}
	m, _ := mirrorRun(t, root, MirrorOptions{DeleteRemoved: true}, paths...)
	if m.Stats().Deleted != 2 {
		t.Errorf("deleted %d", m.Stats().Deleted)
	}
	diffTrees(t, want, scan(t, root))
}

func TestMirrorReservedVersionsDir(t *testing.T) {
	m := NewMirror(tempDir(t), MirrorOptions{StripPrefix: "/srv"})
	job := &bacularec.Job{JobID: 1, Level: 'F'}
	if err := m.Begin(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/srv/.brc-versions/x", "/srv/.brc-versions/"} {
		f := &bacularec.File{Type: bacularec.TypeRegEmpty, Path: p, Job: job, Stat: bacularec.Stat{Mode: 0o100644}}
		err := m.Put(context.Background(), f, nil)
		if fes := FileErrors(err); len(fes) != 1 || !errors.Is(err, ErrUnsafePath) {
			t.Errorf("%s: %v", p, err)
		}
	}
	if err := m.End(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.Root(), VersionsDir)); !os.IsNotExist(err) {
		t.Errorf("versions dir created: %v", err)
	}
}

// delete_removed never runs after a Full that did not end OK, nor after
// an Incremental.
func TestMirrorDeleteRemovedOnlyAfterOKFull(t *testing.T) {
	ctx := context.Background()
	for _, job := range []*bacularec.Job{
		{JobID: 1, Job: "failed-full", Level: 'F', Ended: true, Status: 'E'},
		{JobID: 2, Job: "unfinished-full", Level: 'F'},
		{JobID: 3, Job: "incr", Level: 'I', Ended: true, Status: 'T'},
	} {
		root := tempDir(t)
		stray := filepath.Join(root, "stray.txt")
		os.WriteFile(stray, []byte("x"), 0o644)
		m := NewMirror(root, MirrorOptions{DeleteRemoved: true})
		if err := m.Begin(ctx, job); err != nil {
			t.Fatal(err)
		}
		f, c := regAt(job, "/kept", "data")
		if err := m.Put(ctx, f, c); err != nil {
			t.Fatal(err)
		}
		if err := m.End(ctx, job); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(stray); err != nil || m.Stats().Deleted != 0 {
			t.Errorf("%s: stray file: %v, deleted %d", job.Job, err, m.Stats().Deleted)
		}
	}
}

// A later job adding a file to a directory it does not carry leaves the
// directory's times as the backup had them, and reading files back
// (verify_after) leaves their atimes alone.
func TestMirrorKeepsTimes(t *testing.T) {
	ctx := context.Background()
	root := tempDir(t)
	m := NewMirror(root, MirrorOptions{Verify: true})
	full := &bacularec.Job{JobID: 1, Job: "full", Level: 'F', Ended: true, Status: 'T'}
	m.Begin(ctx, full)
	f, c := regAt(full, "/d/a", "a")
	f.Stat.Atime = 1600000000
	if err := m.Put(ctx, f, c); err != nil {
		t.Fatal(err)
	}
	dir := &bacularec.File{Type: bacularec.TypeDirEnd, Path: "/d/", Job: full,
		Stat: bacularec.Stat{Mode: 0o040755, Mtime: 1500000000, Atime: 1500000001}}
	if err := m.Put(ctx, dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.End(ctx, full); err != nil {
		t.Fatal(err)
	}
	incr := &bacularec.Job{JobID: 2, Job: "incr", Level: 'I', Ended: true, Status: 'T'}
	m.Begin(ctx, incr)
	g, c := regAt(incr, "/d/b", "b")
	if err := m.Put(ctx, g, c); err != nil {
		t.Fatal(err)
	}
	if err := m.End(ctx, incr); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	syscall.Lstat(filepath.Join(root, "d"), &st)
	if st.Mtim.Sec != 1500000000 || st.Atim.Sec != 1500000001 {
		t.Errorf("directory times %d/%d, want 1500000000/1500000001", st.Mtim.Sec, st.Atim.Sec)
	}
	syscall.Lstat(filepath.Join(root, "d/a"), &st)
	if st.Atim.Sec != 1600000000 {
		t.Errorf("atime of a verified file: %d", st.Atim.Sec)
	}
}
