//go:build linux

package extract

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openbrc/brc/bacularec"
)

// TestVolumes extracts real Bacula volumes with the Writer and, when
// bextract is installed, compares the tree with bextract's, entry by entry:
// type, mode, owner, times, size, content, link targets, hard-link groups,
// xattrs (ACLs included) and allocated blocks (ours must not be more).
//
// Opt-in: BRC_EXTRACT_VOLUMES names a directory of volume files; the parts
// of a spanned set (NAME.1.vol, NAME.2.vol ...) are read as one set.
func TestVolumes(t *testing.T) {
	dir := os.Getenv("BRC_EXTRACT_VOLUMES")
	if dir == "" {
		t.Skip("set BRC_EXTRACT_VOLUMES to a directory of Bacula volumes")
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.vol"))
	if len(paths) == 0 {
		t.Fatalf("no *.vol in %s", dir)
	}
	part := regexp.MustCompile(`^(.*)\.(\d+)\.vol$`)
	sets := map[string][]string{}
	for _, p := range paths {
		name := filepath.Base(p)
		if m := part.FindStringSubmatch(name); m != nil {
			name = m[1]
		}
		sets[name] = append(sets[name], p)
	}
	bextract, _ := exec.LookPath("bextract")
	for name, vols := range sets {
		slices.Sort(vols)
		t.Run(name, func(t *testing.T) {
			ours := filepath.Join(t.TempDir(), "ours")
			start := time.Now()
			began := start.Add(-time.Second)
			stats := extractVolumes(t, ours, vols)
			ourTime := time.Since(start)
			t.Logf("ours: %v %+v", ourTime, stats)
			if bextract == "" {
				t.Skip("bextract not installed: no comparison")
			}
			theirs := filepath.Join(t.TempDir(), "bextract")
			start = time.Now()
			runBextract(t, bextract, theirs, vols)
			t.Logf("bextract: %v", time.Since(start))
			compareTrees(t, theirs, ours, began)
		})
	}
}

func extractVolumes(t *testing.T, root string, vols []string) Stats {
	t.Helper()
	w, err := New(root, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	files := bacularec.NewFiles(bacularec.NewMultiReader(bacularec.FileVolumes(vols...)))
	for {
		it, err := files.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		if it.Kind == bacularec.KindNotice {
			t.Logf("notice: %v", it.Err)
		}
		if err := w.Apply(it); err != nil {
			t.Errorf("apply: %v", err)
			if IsFatal(err) {
				t.FailNow()
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	return w.Stats()
}

func runBextract(t *testing.T, bextract, out string, vols []string) {
	t.Helper()
	work := t.TempDir()
	voldir := filepath.Join(work, "vols")
	if err := os.Mkdir(voldir, 0o700); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range vols {
		if err := os.Symlink(v, filepath.Join(voldir, filepath.Base(v))); err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Base(v))
	}
	conf := filepath.Join(work, "sd.conf")
	cfg := fmt.Sprintf(`Storage {
  Name = extract-test-sd
  WorkingDirectory = %q
  Pid Directory = %q
}
Device {
  Name = Vols
  Media Type = File
  Archive Device = %q
  Device Type = File
  Random Access = yes
  AutomaticMount = yes
  RemovableMedia = no
  AlwaysOpen = no
  LabelMedia = no
}
Messages {
  Name = Standard
  stdout = all, !skipped, !saved
}
`, work, work, voldir)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bextract, "-c", conf, "-V", strings.Join(names, "|"), voldir, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bextract: %v\n%s", err, b)
	}
}

type entry struct {
	st    unix.Stat_t
	link  string
	xattr map[string]string
}

func scanTree(t *testing.T, root string) map[string]*entry {
	t.Helper()
	m := map[string]*entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		e := scanOne(p)
		if e == nil {
			return fmt.Errorf("%s vanished", p)
		}
		m[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func scanOne(p string) *entry {
	e := &entry{xattr: map[string]string{}}
	if err := unix.Lstat(p, &e.st); err != nil {
		return nil
	}
	if e.st.Mode&unix.S_IFMT == unix.S_IFLNK {
		e.link, _ = os.Readlink(p)
	}
	buf := make([]byte, 64<<10)
	if n, err := unix.Llistxattr(p, buf); err == nil {
		for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
			if name == "" {
				continue
			}
			v := make([]byte, 64<<10)
			if k, err := unix.Lgetxattr(p, name, v); err == nil {
				e.xattr[name] = string(v[:k])
			}
		}
	}
	return e
}

func compareTrees(t *testing.T, theirs, ours string, since time.Time) {
	t.Helper()
	want, got := scanTree(t, theirs), scanTree(t, ours)
	inodes := map[uint64]uint64{} // their inode -> our inode
	var names []string
	for rel := range want {
		names = append(names, rel)
	}
	slices.Sort(names)
	var ourBlocks, theirBlocks int64
	checkedXattrs := 0
	for _, rel := range names {
		w, g := want[rel], got[rel]
		if g == nil {
			t.Errorf("%s: missing (bextract has it)", rel)
			continue
		}
		ws, gs := &w.st, &g.st
		if ws.Mode != gs.Mode || ws.Uid != gs.Uid || ws.Gid != gs.Gid {
			t.Errorf("%s: mode %o %d:%d, bextract %o %d:%d", rel, gs.Mode, gs.Uid, gs.Gid, ws.Mode, ws.Uid, ws.Gid)
		}
		isLink := ws.Mode&unix.S_IFMT == unix.S_IFLNK
		recorded := ws.Mtim.Sec < since.Unix() // else a parent made without a record
		if rel != "." && recorded && (ws.Mtim != gs.Mtim || (!isLink && ws.Atim.Sec != gs.Atim.Sec)) {
			t.Errorf("%s: times a%d m%d, bextract a%d m%d", rel, gs.Atim.Sec, gs.Mtim.Sec, ws.Atim.Sec, ws.Mtim.Sec)
		}
		if w.link != g.link {
			t.Errorf("%s: link %q, bextract %q", rel, g.link, w.link)
		}
		xattrsEqual := mapsEqual(w.xattr, g.xattr)
		if !xattrsEqual && len(w.xattr) > 0 {
			t.Errorf("%s: xattrs %q, bextract %q", rel, g.xattr, w.xattr)
		}
		if len(g.xattr) > 0 {
			// bextract may restore none: check against the original
			// when it is still on this host.
			if src := scanOne("/" + rel); src != nil && !mapsEqual(src.xattr, g.xattr) {
				t.Errorf("%s: xattrs %q, original %q", rel, g.xattr, src.xattr)
			} else if src != nil {
				checkedXattrs++
			}
		}
		if ws.Mode&unix.S_IFMT == unix.S_IFREG {
			if ws.Size != gs.Size {
				t.Errorf("%s: size %d, bextract %d", rel, gs.Size, ws.Size)
			} else if !sameContent(t, filepath.Join(theirs, rel), filepath.Join(ours, rel)) {
				t.Errorf("%s: content differs", rel)
			}
			if gs.Blocks > ws.Blocks && xattrsEqual { // xattrs may take a block
				t.Errorf("%s: %d blocks, bextract %d: less sparse", rel, gs.Blocks, ws.Blocks)
			}
			ourBlocks += gs.Blocks
			theirBlocks += ws.Blocks
			if ws.Nlink > 1 {
				if prev, ok := inodes[ws.Ino]; ok && prev != gs.Ino {
					t.Errorf("%s: hard link group broken", rel)
				}
				inodes[ws.Ino] = gs.Ino
			}
			if ws.Nlink != gs.Nlink {
				t.Errorf("%s: nlink %d, bextract %d", rel, gs.Nlink, ws.Nlink)
			}
		}
	}
	for rel := range got {
		if want[rel] == nil {
			t.Errorf("%s: extra (bextract does not have it)", rel)
		}
	}
	t.Logf("%d entries; allocated 512-byte blocks: ours %d, bextract %d; xattrs checked against the original: %d",
		len(want), ourBlocks, theirBlocks, checkedXattrs)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func sameContent(t *testing.T, a, b string) bool {
	// Read without touching atime, already compared.
	x, err1 := readNoAtime(a)
	y, err2 := readNoAtime(b)
	if err := errors.Join(err1, err2); err != nil {
		t.Error(err)
		return false
	}
	return bytes.Equal(x, y)
}

func readNoAtime(p string) ([]byte, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOATIME|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	return io.ReadAll(f)
}
