//go:build linux

package extract

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/openbrc/brc/bacularec"
)

// apply feeds the items of one file without committing.
func (e *env) apply(f *bacularec.File, pieces ...piece) error {
	var errs []error
	errs = append(errs, e.w.Apply(&bacularec.Item{Kind: bacularec.KindFile, File: f}))
	for _, p := range pieces {
		errs = append(errs, e.w.Apply(&bacularec.Item{Kind: bacularec.KindData, File: f, Offset: p.off, Data: p.data}))
	}
	errs = append(errs, e.w.Apply(&bacularec.Item{Kind: bacularec.KindFileEnd, File: f}))
	return errors.Join(errs...)
}

func temps(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range ents {
		if strings.HasPrefix(d.Name(), TempPrefix) {
			names = append(names, d.Name())
		}
	}
	return names
}

func TestAtomic(t *testing.T) {
	var placed []string
	var infos []Info
	e := newEnv(t, Options{Atomic: true, Sync: true, Deletions: true, Placed: func(f *bacularec.File, info Info) {
		placed = append(placed, f.Path)
		infos = append(infos, info)
	}})
	// An old version is in place until Commit, never a partial new one.
	if err := os.MkdirAll(e.p("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.p("d/f"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, pieces := reg("/d/f", 0o640, "new content")
	if err := e.apply(f, pieces...); err != nil {
		t.Fatal(err)
	}
	// A hard link to a file not yet in place links to its content.
	link := &bacularec.File{Type: bacularec.TypeLinkSaved, Path: "/d/link", Link: "/d/f"}
	if err := e.apply(link); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, e.p("d/f")); got != "old" {
		t.Fatalf("before Commit: %q", got)
	}
	if n := len(temps(t, e.p("d"))); n != 1 || e.w.Pending() != 1 {
		t.Fatalf("%d temporary files, %d pending", n, e.w.Pending())
	}
	if err := e.w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, e.p("d/f")); got != "new content" {
		t.Fatalf("after Commit: %q", got)
	}
	st, lst := lstat(t, e.p("d/f")), lstat(t, e.p("d/link"))
	if st.Ino != lst.Ino || st.Mode != sIFREG|0o640 || st.Mtim.Sec != 1500000000 {
		t.Errorf("stat %+v, link ino %d", st, lst.Ino)
	}
	if len(placed) != 1 || placed[0] != "/d/f" || infos[0].Ino != st.Ino || infos[0].Size != 11 ||
		infos[0].Mtime != 1500000000e9 || infos[0].Ctime != st.Ctim.Nano() {
		t.Errorf("Placed %v %+v", placed, infos)
	}
	if n := temps(t, e.p("d")); len(n) != 0 {
		t.Errorf("temporary files left: %v", n)
	}

	// Stat, Open, CopyFrom and SetMeta: what a replication target uses to
	// replace only the end of a file, or only its metadata.
	info, err := e.w.Stat("/d/f")
	if err != nil || info.Ino != st.Ino || info.Mode != sIFREG|0o640 {
		t.Fatalf("Stat %+v %v", info, err)
	}
	if _, err := e.w.Stat("/d/none"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("Stat missing: %v", err)
	}
	src, err := e.w.Open("/d/f")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	g, _ := reg("/d/f", 0o600, "new content, longer")
	if err := e.w.Apply(&bacularec.Item{Kind: bacularec.KindFile, File: g}); err != nil {
		t.Fatal(err)
	}
	if err := e.w.CopyFrom(g, src, 11); err != nil {
		t.Fatal(err)
	}
	if err := e.w.Apply(&bacularec.Item{Kind: bacularec.KindData, File: g, Offset: 11, Data: []byte(", longer")}); err != nil {
		t.Fatal(err)
	}
	if err := e.w.Apply(&bacularec.Item{Kind: bacularec.KindFileEnd, File: g}); err != nil {
		t.Fatal(err)
	}
	if err := e.w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, e.p("d/f")); got != "new content, longer" {
		t.Errorf("CopyFrom: %q", got)
	}
	h, _ := reg("/d/f", 0o444, "")
	h.Stat.Mtime = 1234567890
	if err := e.w.SetMeta(h); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, e.p("d/f")); st.Mode != sIFREG|0o444 || st.Mtim.Sec != 1234567890 || st.Size != 19 {
		t.Errorf("SetMeta: %+v", st)
	}
	if _, err := e.w.Open("/d"); err == nil {
		t.Error("Open of a directory succeeded")
	}

	// A failed file leaves no temporary name; a directory replaced by a
	// symbolic link after a file was written into it takes the file along
	// (the file is committed first, as without Atomic).
	cut, pieces := reg("/d/cut", 0o644, "partial")
	cut.Incomplete = true
	if err := e.apply(cut, pieces...); !errors.Is(err, ErrIncomplete) {
		t.Errorf("incomplete: %v", err)
	}
	in, pieces := reg("/gone/in", 0o644, "x")
	if err := e.apply(in, pieces...); err != nil {
		t.Fatal(err)
	}
	if err := e.apply(&bacularec.File{Type: bacularec.TypeDeleted, Path: "/gone/"}); err != nil {
		t.Fatal(err)
	}
	if err := e.w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := temps(t, e.p("d")); len(n) != 0 {
		t.Errorf("temporary files left: %v", n)
	}
	if _, err := os.Lstat(e.p("gone")); !os.IsNotExist(err) {
		t.Errorf("deleted directory: %v", err)
	}
}

// StartCommit flushes in the background: the files stay under their
// temporary names, can still be hard-linked, and go in place at the first
// Reap after the flush; a deletion of their directory puts them in place
// first; the files finished during the flush wait for the next one.
func TestStartCommit(t *testing.T) {
	var placed []string
	e := newEnv(t, Options{Atomic: true, Sync: true, Deletions: true, Placed: func(f *bacularec.File, _ Info) {
		placed = append(placed, f.Path)
	}})
	a, pa := reg("/d/a", 0o644, "a")
	if err := e.apply(a, pa...); err != nil {
		t.Fatal(err)
	}
	if err := e.w.StartCommit(); err != nil || !e.w.Flushing() || e.w.Pending() != 1 {
		t.Fatalf("StartCommit: %v, flushing %v, pending %d", err, e.w.Flushing(), e.w.Pending())
	}
	b, pb := reg("/d/b", 0o644, "b")
	if err := e.apply(b, pb...); err != nil {
		t.Fatal(err)
	}
	// A hard link to a file of the batch being flushed.
	link := &bacularec.File{Type: bacularec.TypeLinkSaved, Path: "/d/link", Link: "/d/a"}
	if err := e.apply(link); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(e.p("d/a")); !os.IsNotExist(err) {
		t.Fatalf("a in place before its flush was reaped: %v", err)
	}
	for e.w.Flushing() {
		if err := e.w.Reap(); err != nil {
			t.Fatal(err)
		}
	}
	if got := readFile(t, e.p("d/a")); got != "a" || e.w.Pending() != 1 || len(placed) != 1 {
		t.Fatalf("after Reap: a %q, pending %d, placed %v", got, e.w.Pending(), placed)
	}
	if lstat(t, e.p("d/link")).Ino != lstat(t, e.p("d/a")).Ino {
		t.Error("the hard link is not to a")
	}
	// b is flushing when its directory is deleted: it goes in first, then
	// the directory with everything in it.
	if err := e.w.StartCommit(); err != nil || !e.w.Flushing() {
		t.Fatalf("second StartCommit: %v", err)
	}
	del := &bacularec.File{Type: bacularec.TypeDeleted, Path: "/d/"}
	if err := e.apply(del); err != nil {
		t.Fatal(err)
	}
	if e.w.Flushing() || e.w.Pending() != 0 || len(placed) != 2 {
		t.Fatalf("flushing %v, pending %d, placed %v", e.w.Flushing(), e.w.Pending(), placed)
	}
	if _, err := os.Lstat(e.p("d")); !os.IsNotExist(err) {
		t.Fatalf("d still there: %v", err)
	}
	if err := e.w.Close(); err != nil {
		t.Fatal(err)
	}
}
