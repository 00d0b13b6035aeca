package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openbrc/brc/bacularec"
)

const accDir = "/tmp/brc-fixture-src/accurate/"

// withoutVersions drops VersionsDir from a scan.
func withoutVersions(m map[string]string) map[string]string {
	for k := range m {
		if k == VersionsDir || strings.HasPrefix(k, VersionsDir+"/") {
			delete(m, k)
		}
	}
	return m
}

// retentionRun replicates paths through an Engine to a Retention of a
// Mirror whose clock reads each job's start time, and returns the start
// times by JobId. midx is the Mirror's Index, idx the same seen by the
// Retention.
func retentionRun(t *testing.T, root string, versions int, skip bool, midx, idx Index, paths ...string) (*Retention, map[uint32]time.Time) {
	t.Helper()
	var mu sync.Mutex
	var now time.Time
	starts := map[uint32]time.Time{}
	m := NewMirror(root, MirrorOptions{Index: midx, SkipUnchanged: skip, Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}})
	r := NewRetention(m, versions, idx, RetentionOptions{Logf: t.Logf})
	e := &Engine{Dests: []Destination{{Name: "r", Target: r}}, Hooks: Hooks{
		BeforeJob: func(_ context.Context, _ string, j *bacularec.Job) error {
			mu.Lock()
			defer mu.Unlock()
			now = j.StartTime
			starts[j.JobID] = j.StartTime
			return nil
		}}}
	sum, err := e.Run(context.Background(), source(paths...))
	if err != nil {
		t.Fatal(err)
	}
	if ts := sum.Targets[0]; !ts.OK() {
		t.Fatalf("target: %+v", ts)
	}
	return r, starts
}

// versionsOf lists the versions of every path under root: path -> names.
func versionsOf(t *testing.T, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	base := filepath.Join(root, VersionsDir)
	filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			t.Fatal(err)
		}
		if d.IsDir() {
			if ents, _ := os.ReadDir(p); len(ents) == 0 && p != base {
				t.Errorf("empty directory left: %s", p)
			}
			return nil
		}
		rel, _ := filepath.Rel(base, filepath.Dir(p))
		out["/"+rel] = append(out["/"+rel], d.Name())
		return nil
	})
	for p := range out {
		vs, err := ListVersions(root, p)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, v := range vs {
			names = append(names, v.Name)
		}
		if len(names) != len(out[p]) {
			t.Errorf("%s: ListVersions %v, directory %v", p, names, out[p])
		}
		out[p] = names
	}
	return out
}

// The accurate Full -> Incremental -> Differential chain through a
// Retention: the current tree is the Mirror's, and each file the chain
// changed or deleted has its previous versions, named after the job that
// wrote them, pruned beyond N; unchanged files have none.
func TestRetentionChain(t *testing.T) {
	full, incr, diff := vols("accurate-1-full"), vols("accurate-1-full", "accurate-2-incr"),
		vols("accurate-1-full", "accurate-2-incr", "accurate-3-diff")
	ref1, ref2 := extractRef(t, full), extractRef(t, incr)
	want := scan(t, extractRef(t, diff))
	// The symbolic link's mtime, which names its version (the Index
	// knows nothing of links).
	var linkMtime int64
	files := bacularec.NewFiles(bacularec.NewMultiReader(bacularec.FileVolumes(full...)))
	for {
		it, err := files.Next()
		if err != nil {
			break
		}
		if it.Kind == bacularec.KindFileEnd && strings.HasSuffix(it.File.Path, "/symlink-to-keep") {
			linkMtime = it.File.Stat.Mtime
		}
	}
	if linkMtime == 0 {
		t.Fatal("no symlink-to-keep in the Full")
	}
	for _, versions := range []int{1, 2} {
		for _, skip := range []bool{false, true} {
			t.Run(fmt.Sprintf("versions=%d,skip_unchanged=%v", versions, skip), func(t *testing.T) {
				cat, err := OpenCatalog(tempDir(t) + "/c.db")
				if err != nil {
					t.Fatal(err)
				}
				defer cat.Close()
				root := tempDir(t)
				idx := cat.Index("r")
				r, starts := retentionRun(t, root, versions, skip, idx, idx, diff...)
				diffTrees(t, want, withoutVersions(scan(t, root)))
				if s := r.Stats(); s.Errors != 0 {
					t.Errorf("stats %+v", s)
				}

				v := func(job uint32) string { return VersionName(starts[job], job, 1) }
				exp := map[string][]string{
					accDir + "modify.txt":            []string{v(14), v(13)}[:versions],
					accDir + "data/random-20000.bin": {v(13)},
					accDir + "del/file1.txt":         {v(13)},
					accDir + "rename-me.txt":         {v(13)},
					accDir + "deldir/a.txt":          {v(13)},
					accDir + "deldir/sub/b.txt":      {v(13)},
					accDir + "hard/b":                {v(13)},
					accDir + "symlink-to-keep":       {VersionName(time.Unix(linkMtime, 0), 0, 1)},
				}
				got := versionsOf(t, root)
				for _, p := range slices.Sorted(keys(exp)) {
					if !slices.Equal(got[p], exp[p]) {
						t.Errorf("%s: versions %v, want %v", p, got[p], exp[p])
					}
				}
				for p, names := range got {
					if _, ok := exp[p]; !ok {
						t.Errorf("%s: unexpected versions %v", p, names)
					}
				}

				// Contents: each version holds what its job wrote.
				vdir := func(p string) string { return filepath.Join(root, VersionsDir, p) }
				same := func(a, b string) {
					t.Helper()
					x, err1 := os.ReadFile(a)
					y, err2 := os.ReadFile(b)
					if err1 != nil || err2 != nil || string(x) != string(y) {
						t.Errorf("%s differs from %s (%v %v)", a, b, err1, err2)
					}
				}
				same(filepath.Join(vdir(accDir+"modify.txt"), v(14)), filepath.Join(ref2, accDir, "modify.txt"))
				if versions > 1 {
					same(filepath.Join(vdir(accDir+"modify.txt"), v(13)), filepath.Join(ref1, accDir, "modify.txt"))
				}
				same(filepath.Join(vdir(accDir+"data/random-20000.bin"), v(13)), filepath.Join(ref1, accDir, "data/random-20000.bin"))
				same(filepath.Join(vdir(accDir+"deldir/a.txt"), v(13)), filepath.Join(ref1, accDir, "deldir/a.txt"))
				if l, err := os.Readlink(filepath.Join(vdir(accDir+"symlink-to-keep"), exp[accDir+"symlink-to-keep"][0])); err != nil || l != "keep.txt" {
					t.Errorf("symlink version: %q %v", l, err)
				}
				vs, err := ListVersions(root, accDir+"modify.txt")
				if err != nil || len(vs) != versions || vs[0].JobID != 14 || !vs[0].Time.Equal(starts[14].Truncate(time.Second)) ||
					vs[0].Size != 10 || vs[0].Mode != 0o644 || vs[0].Path != strings.TrimSuffix(accDir, "/")+"/modify.txt" {
					t.Errorf("ListVersions = %+v, %v", vs, err)
				}
				// A version is the old file itself, not a copy, and no longer
				// the current one.
				var st syscall.Stat_t
				if err := syscall.Stat(filepath.Join(vdir(accDir+"modify.txt"), v(14)), &st); err != nil || st.Nlink != 1 {
					t.Errorf("version of modify.txt: nlink %d, %v", st.Nlink, err)
				}

				// Restore the oldest version kept: the current file gets its
				// content back, and the file it replaces is kept.
				cur := filepath.Join(root, accDir, "modify.txt")
				old := vs[len(vs)-1]
				ref := map[uint32]string{13: ref1, 14: ref2}[old.JobID]
				before, _ := os.ReadFile(cur)
				if err := RestoreVersion(root, old.Path, old.Name, ""); err != nil {
					t.Fatal(err)
				}
				same(cur, filepath.Join(ref, accDir, "modify.txt"))
				fi, err := os.Stat(cur)
				if err != nil || fi.Mode() != 0o644 || fi.ModTime().Unix() != mtimeOf(t, filepath.Join(ref, accDir, "modify.txt")) {
					t.Errorf("restored file: %v %v", fi.Mode(), err)
				}
				vs2, _ := ListVersions(root, old.Path)
				if len(vs2) != len(vs)+1 || vs2[0].JobID != 0 {
					t.Fatalf("after restore: %+v", vs2)
				}
				b, _ := os.ReadFile(filepath.Join(vdir(accDir+"modify.txt"), vs2[0].Name))
				if string(b) != string(before) {
					t.Errorf("file replaced by the restore kept as %q, was %q", b, before)
				}
				// Undo; and a copy elsewhere.
				if err := RestoreVersion(root, old.Path, vs2[0].Name, ""); err != nil {
					t.Fatal(err)
				}
				same(cur, filepath.Join(vdir(accDir+"modify.txt"), vs2[0].Name))
				out := tempDir(t)
				if err := RestoreVersion(root, old.Path, v(14), out); err != nil {
					t.Fatal(err)
				}
				same(filepath.Join(out, "modify.txt"), filepath.Join(ref2, accDir, "modify.txt"))
				scan(t, root) // no temporary file left
			})
		}
	}
}

func keys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func mtimeOf(t *testing.T, p string) int64 {
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime().Unix()
}

// countingIndex counts the entries its user writes.
type countingIndex struct {
	Index
	mu   sync.Mutex
	puts int
}

func (c *countingIndex) Put(p string, e IndexEntry) error {
	c.mu.Lock()
	c.puts++
	c.mu.Unlock()
	return c.Index.Put(p, e)
}

// The same Full again, on a target that holds it: nothing changes, so no
// version is made, no content written, and the Mirror trusts its index
// as much as without versions (the links and unlinks of versions change
// ctimes, which the index compares).
func TestRetentionUnchangedAgain(t *testing.T) {
	full := vols("accurate-1-full")
	cat, err := OpenCatalog(tempDir(t) + "/c.db")
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	// The Mirror alone, for reference: entries it rewrites the second
	// time (metadata applied to files it could not trust).
	base := &countingIndex{Index: cat.Index("m")}
	mroot := tempDir(t)
	mirrorRun(t, mroot, MirrorOptions{SkipUnchanged: true, Index: base}, full...)
	var basePuts []int
	for range 2 {
		base.puts = 0
		mirrorRun(t, mroot, MirrorOptions{SkipUnchanged: true, Index: base}, full...)
		basePuts = append(basePuts, base.puts)
	}

	root := tempDir(t)
	idx := cat.Index("r")
	retentionRun(t, root, 3, true, idx, idx, full...)
	if got := versionsOf(t, root); len(got) != 0 {
		t.Errorf("versions after a Full: %v", got)
	}
	for i := range 2 {
		ci := &countingIndex{Index: idx}
		r, _ := retentionRun(t, root, 3, true, ci, idx, full...)
		if got := versionsOf(t, root); len(got) != 0 {
			t.Errorf("versions after the same Full again: %v", got)
		}
		if s := r.Stats(); s.Bytes != 0 || s.Skipped == 0 {
			t.Errorf("run %d wrote %+v", i+2, s)
		}
		if ci.puts != basePuts[i] {
			t.Errorf("run %d: the Mirror rewrote %d index entries, %d without versions: the versions spoiled the index", i+2, ci.puts, basePuts[i])
		}
	}
}

// Hand-made records: a file replaced by a directory, a directory by a
// file, versions with colliding names, hostile paths; restore errors.
func TestRetentionRecords(t *testing.T) {
	root := tempDir(t)
	cat, err := OpenCatalog(tempDir(t) + "/c.db")
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	idx := cat.Index("r")
	clock := time.Date(2026, 11, 27, 3, 15, 58, 0, time.UTC)
	m := NewMirror(root, MirrorOptions{Index: idx, StripPrefix: "/srv", Now: func() time.Time { return clock }})
	r := NewRetention(m, 2, idx, RetentionOptions{Logf: t.Logf})
	ctx := context.Background()
	data := map[*bacularec.File]string{}
	job := func(id uint32, recs ...*bacularec.File) error {
		j := &bacularec.Job{JobID: id, Level: 'I', Started: true, Ended: true, Status: 'T'}
		if err := r.Begin(ctx, j); err != nil {
			t.Fatal(err)
		}
		var errs []error
		for _, f := range recs {
			f.Job = j
			errs = append(errs, r.Put(ctx, f, &bytesContent{data: []byte(data[f])}))
		}
		if err := r.End(ctx, j); err != nil {
			t.Fatal(err)
		}
		return errors.Join(errs...)
	}
	reg := func(p, content string) *bacularec.File {
		f := &bacularec.File{Type: bacularec.TypeReg, Path: p,
			Stat: bacularec.Stat{Mode: 0o100644, Size: int64(len(content)), Mtime: 1_600_000_000}}
		data[f] = content
		return f
	}
	if err := job(1, reg("/srv/x", "x1"), reg("/srv/d/f", "f1")); err != nil {
		t.Fatal(err)
	}
	// x becomes a directory (its entry comes first, as Bacula sends it);
	// d becomes a file.
	clock = clock.Add(time.Hour)
	err = job(2, reg("/srv/x/inner", "in"),
		&bacularec.File{Type: bacularec.TypeDirEnd, Path: "/srv/x/", Stat: bacularec.Stat{Mode: 0o40755}},
		reg("/srv/d", "now a file"),
		reg("/srv/../escape", "no"), reg("/srv/.brc-versions/x", "no"))
	if fes := FileErrors(err); len(fes) != 2 {
		t.Fatalf("hostile paths: %v", err)
	}
	got := versionsOf(t, root)
	want := map[string][]string{"/x": {"20261127T031558Z-job1"}, "/d/f": {"20261127T031558Z-job1"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("versions %v, want %v", got, want)
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(root), "escape")); !os.IsNotExist(err) {
		t.Errorf("escaped: %v", err)
	}
	// Three more versions of d, two written in the same second (ordered
	// by JobId then); pruned to 2.
	for i, c := range []string{"a", "b", "c"} {
		if i != 1 {
			clock = clock.Add(time.Hour)
		}
		if err := job(uint32(3+i), reg("/srv/d", c)); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := ListVersions(root, "/d")
	if err != nil || len(vs) != 2 || vs[0].Name != "20261127T051558Z-job4" || vs[1].Name != "20261127T051558Z-job3" {
		t.Fatalf("versions of /d: %+v %v", vs, err)
	}
	b, _ := os.ReadFile(filepath.Join(root, VersionsDir, "d", vs[0].Name))
	if string(b) != "b" {
		t.Errorf("newest version of d holds %q", b)
	}

	for _, tc := range []struct{ path, name, dst, want string }{
		{"/d", "20200101T000000Z-job9", "", "has no version 20200101T000000Z-job9 (it has: 20261127T051558Z-job4, 20261127T051558Z-job3)"},
		{"/d", "bogus", "", `"bogus" is not a version name`},
		{"/nothing", "20200101T000000Z-job9", "", "/nothing has no versions"},
		{"/../etc/passwd", "20200101T000000Z-job9", "", "unsafe path"},
		{"/.brc-versions/d", "20200101T000000Z-job9", "", "unsafe path"},
	} {
		err := RestoreVersion(root, tc.path, tc.name, tc.dst)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("RestoreVersion(%s, %s) = %v, want %q", tc.path, tc.name, err, tc.want)
		}
	}
	if _, err := ListVersions(root, "/a/../../b"); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("ListVersions with ..: %v", err)
	}
	// A symbolic link planted on the way is never followed.
	outside := tempDir(t)
	os.Symlink(outside, filepath.Join(root, "planted"))
	os.MkdirAll(filepath.Join(root, VersionsDir, "planted", "f"), 0o700)
	os.WriteFile(filepath.Join(root, VersionsDir, "planted", "f", "20200101T000000Z-job1"), []byte("v"), 0o644)
	if err := RestoreVersion(root, "/planted/f", "20200101T000000Z-job1", ""); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("restore through a symlink: %v", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("written outside the root: %v", ents)
	}
}

func TestVersionName(t *testing.T) {
	tm := time.Date(2026, 11, 27, 3, 15, 58, 0, time.FixedZone("X", 3600))
	for _, tc := range []struct {
		seq  int
		want string
	}{{1, "20261127T021558Z-job13"}, {2, "20261127T021558Z-job13.2"}} {
		n := VersionName(tm, 13, tc.seq)
		if n != tc.want {
			t.Errorf("VersionName = %q, want %q", n, tc.want)
		}
		pt, job, seq, ok := ParseVersionName(n)
		if !ok || !pt.Equal(tm) || job != 13 || seq != tc.seq {
			t.Errorf("ParseVersionName(%q) = %v %d %d %v", n, pt, job, seq, ok)
		}
	}
	for _, bad := range []string{"", "x", "20261127T021558Z-job", "20261127T021558Z-job1.1", "20261127T021558Z-job1.x",
		"20261327T021558Z-job1", "20261127T021558Z-job99999999999", "20261127T021558-job1", "20261127T021558Z-job+1"} {
		if _, _, _, ok := ParseVersionName(bad); ok {
			t.Errorf("ParseVersionName(%q) accepted", bad)
		}
	}
}

// bytesContent is a Content of one piece.
type bytesContent struct {
	data []byte
	done bool
}

func (c *bytesContent) Next() (int64, []byte, error) {
	if c.done || len(c.data) == 0 {
		c.done = true
		return 0, nil, io.EOF
	}
	c.done = true
	return 0, c.data, nil
}

// delete_removed after a Full removes what the Full did not contain: a
// Retention keeps it as a version first.
func TestRetentionDeleteRemoved(t *testing.T) {
	paths := vols("plain-md5")
	want := scan(t, extractRef(t, paths))
	root := tempDir(t)
	run := func() *Retention {
		t.Helper()
		r := NewRetention(NewMirror(root, MirrorOptions{DeleteRemoved: true}), 2, nil, RetentionOptions{Logf: t.Logf})
		e := &Engine{Dests: []Destination{{Name: "r", Target: r}}}
		sum, err := e.Run(context.Background(), source(paths...))
		if err != nil || !sum.Targets[0].OK() {
			t.Fatalf("%v %+v", err, sum.Targets[0])
		}
		return r
	}
	run()
	os.MkdirAll(filepath.Join(root, "olddir/sub"), 0o755)
	os.WriteFile(filepath.Join(root, "olddir/sub/file"), []byte("old file"), 0o644)
	os.WriteFile(filepath.Join(root, "stray.txt"), []byte("stray"), 0o644)
	mt := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	os.Chtimes(filepath.Join(root, "stray.txt"), mt, mt)
	if r := run(); r.Stats().Deleted != 2 {
		t.Errorf("deleted %d", r.Stats().Deleted)
	}
	diffTrees(t, want, withoutVersions(scan(t, root)))
	got := versionsOf(t, root)
	if len(got) != 2 || len(got["/olddir/sub/file"]) != 1 || !slices.Equal(got["/stray.txt"], []string{"20250102T030405Z-job0"}) {
		t.Errorf("versions %v", got)
	}
	if err := RestoreVersion(root, "/stray.txt", "20250102T030405Z-job0", ""); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "stray.txt")); string(b) != "stray" {
		t.Errorf("restored %q", b)
	}
}
