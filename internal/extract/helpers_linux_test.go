//go:build linux

package extract

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/openbrc/brc/bacularec"
)

const (
	sIFREG = 0o100000
	sIFDIR = 0o040000
	sIFLNK = 0o120000
)

var isRoot = os.Geteuid() == 0

func needRoot(t *testing.T, why string) {
	t.Helper()
	if !isRoot {
		t.Skip("needs root: " + why)
	}
}

// piece is one KindData item.
type piece struct {
	off  int64
	data []byte
}

// env is a Writer under test with its root and a sentinel directory
// outside the root that must stay untouched.
type env struct {
	t       *testing.T
	w       *Writer
	root    string
	outside string
	logs    []string
}

// testAtomic runs the tests with Options.Atomic and Sync (the mode of
// replication targets): BRC_TEST_ATOMIC=1 go test.
var testAtomic = os.Getenv("BRC_TEST_ATOMIC") != ""

func newEnv(t *testing.T, opt Options) *env {
	t.Helper()
	base := t.TempDir()
	e := &env{t: t, root: filepath.Join(base, "root"), outside: filepath.Join(base, "outside")}
	if err := os.Mkdir(e.outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if opt.Logf == nil {
		opt.Logf = func(format string, args ...any) {
			e.logs = append(e.logs, format)
			t.Logf(format, args...)
		}
	}
	if testAtomic {
		opt.Atomic, opt.Sync = true, true
	}
	w, err := New(e.root, opt)
	if err != nil {
		t.Fatal(err)
	}
	e.w = w
	t.Cleanup(func() {
		w.Close()
		// Restored modes (0500, 0555 ...) would stop an unprivileged
		// TempDir cleanup.
		filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
			if d != nil && d.IsDir() {
				os.Chmod(p, 0o700)
			}
			return nil
		})
	})
	return e
}

// noOpenat2 forces the component-by-component walk.
func (e *env) noOpenat2() *env { e.w.noOpenat2 = true; return e }

func (e *env) p(rel string) string { return filepath.Join(e.root, rel) }

// put feeds the items of one file (KindFile, data pieces, KindFileEnd) and
// returns the errors in order.
func (e *env) put(f *bacularec.File, pieces ...piece) error {
	e.t.Helper()
	var errs []error
	if err := e.w.Apply(&bacularec.Item{Kind: bacularec.KindFile, File: f}); err != nil {
		errs = append(errs, err)
	}
	for _, p := range pieces {
		if err := e.w.Apply(&bacularec.Item{Kind: bacularec.KindData, File: f, Offset: p.off, Data: p.data}); err != nil {
			errs = append(errs, err)
		}
	}
	if err := e.w.Apply(&bacularec.Item{Kind: bacularec.KindFileEnd, File: f}); err != nil {
		errs = append(errs, err)
	}
	// In atomic mode a file is only visible after Commit; committing each
	// one keeps the tests' expectations of the plain mode.
	if err := e.w.Commit(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// mustPut is put that fails the test on error.
func (e *env) mustPut(f *bacularec.File, pieces ...piece) {
	e.t.Helper()
	if err := e.put(f, pieces...); err != nil {
		e.t.Fatalf("%s: %v", f.Path, err)
	}
}

func (e *env) close() {
	e.t.Helper()
	if err := e.w.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
}

// outsideUntouched checks the sentinel directory is still empty, 0755.
func (e *env) outsideUntouched() {
	e.t.Helper()
	ents, err := os.ReadDir(e.outside)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range ents {
		e.t.Errorf("created outside the root: %s", d.Name())
	}
	fi, err := os.Lstat(e.outside)
	if err != nil {
		e.t.Fatal(err)
	}
	if fi.Mode() != os.ModeDir|0o755 {
		e.t.Errorf("outside dir mode changed to %v", fi.Mode())
	}
}

func reg(path string, mode uint32, data string) (*bacularec.File, []piece) {
	f := &bacularec.File{Type: bacularec.TypeReg, Path: path,
		Stat: bacularec.Stat{Mode: sIFREG | mode, Size: int64(len(data)), Atime: 1600000000, Mtime: 1500000000}}
	if data == "" {
		f.Type = bacularec.TypeRegEmpty
		return f, nil
	}
	return f, []piece{{0, []byte(data)}}
}

func dirRec(path string, mode uint32, mtime int64) *bacularec.File {
	return &bacularec.File{Type: bacularec.TypeDirEnd, Path: path,
		Stat: bacularec.Stat{Mode: sIFDIR | mode, Atime: mtime + 1, Mtime: mtime}}
}

func symlinkRec(path, target string) *bacularec.File {
	return &bacularec.File{Type: bacularec.TypeSymlink, Path: path, Link: target,
		Stat: bacularec.Stat{Mode: sIFLNK | 0o777, Atime: 1400000001, Mtime: 1400000000}}
}

func lstat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
