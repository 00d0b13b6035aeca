package replica

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/openbrc/brc/bacularec"
)

const testdata = "../bacularec/testdata/"

func vols(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, testdata+"bacula-9.6.7-"+n+".vol")
	}
	return out
}

func source(paths ...string) Source {
	return func(ctx context.Context) (*bacularec.Files, error) {
		return bacularec.NewFiles(bacularec.NewMultiReader(bacularec.FileVolumes(paths...))), nil
	}
}

// manifestEntry is a line of bacularec/testdata/trees/*.tsv.
type manifestEntry struct {
	typ    string
	mode   uint32
	size   int64
	mtime  int64
	sha256 string
	link   string
}

func readManifest(t *testing.T, tree string) map[string]manifestEntry {
	t.Helper()
	f, err := os.Open(testdata + "trees/" + tree + ".tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]manifestEntry{}
	sc := bufio.NewScanner(f)
	sc.Scan()
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		p, err := strconv.Unquote(c[0])
		if err != nil {
			t.Fatal(err)
		}
		mode, _ := strconv.ParseUint(c[2], 8, 32)
		size, _ := strconv.ParseInt(c[5], 10, 64)
		mtime, _ := strconv.ParseInt(c[6], 10, 64)
		out[p] = manifestEntry{typ: c[1], mode: uint32(mode), size: size, mtime: mtime, sha256: c[7]}
	}
	return out
}

// srcRoot finds the backed-up directory the manifest's "." is: the
// shortest directory path the target holds.
func srcRoot(paths []string) string {
	root := ""
	for _, p := range paths {
		if root == "" || len(p) < len(root) {
			root = p
		}
	}
	return root
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkMemory compares a Memory target with a tree manifest: every
// regular file's content and mode, every directory and symlink present.
func checkMemory(t *testing.T, m *Memory, tree string) {
	t.Helper()
	want := readManifest(t, tree)
	files := m.Files()
	var dirs []string
	for p, f := range files {
		if f.Type == bacularec.TypeDirEnd {
			dirs = append(dirs, p)
		}
	}
	root := srcRoot(dirs)
	regs := 0
	for rel, w := range want {
		p := root
		if rel != "." {
			p = root + "/" + rel
		}
		f, ok := files[p]
		if !ok {
			if w.typ != "sock" {
				t.Errorf("%s: missing", p)
			}
			continue
		}
		if f.Stat.Mode&0o7777 != w.mode {
			t.Errorf("%s: mode %o, want %o", p, f.Stat.Mode&0o7777, w.mode)
		}
		if w.typ == "reg" {
			regs++
			if got := sha(f.Data); got != w.sha256 {
				t.Errorf("%s: content %s, want %s", p, got, w.sha256)
			}
		}
	}
	if regs == 0 {
		t.Fatal("no regular file compared")
	}
	for p := range files {
		rel := strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		if rel == "" {
			rel = "."
		}
		if _, ok := want[rel]; !ok && strings.HasPrefix(p, root) {
			t.Errorf("%s: not in the source tree", p)
		}
	}
}

func tempDir(t *testing.T) string {
	d := t.TempDir()
	p, err := filepath.EvalSymlinks(d)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
