package replicatest_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/replica"
	"github.com/openbrc/brc/replica/replicatest"
)

func TestMemory(t *testing.T) {
	replicatest.Run(t, replicatest.Harness{
		New:  func(*testing.T) replica.Target { return replica.NewMemory() },
		Tree: memoryTree,
		// Memory holds no inodes and no blocks; a hard link is the same
		// *MemFile, which Files() hides behind copies.
		Skip: []string{replicatest.CapSparseHoles, replicatest.CapHardLinkIdentity},
	})
}

// TestLimitedMemory runs the suite through a bandwidth limit wide enough
// not to slow it: the wrapper must change nothing else.
func TestLimitedMemory(t *testing.T) {
	replicatest.Run(t, replicatest.Harness{
		New:  func(*testing.T) replica.Target { return replica.Limit(replica.NewMemory(), 1<<30) },
		Tree: memoryTree,
		Skip: []string{replicatest.CapSparseHoles, replicatest.CapHardLinkIdentity},
	})
}

func TestMirror(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the Mirror restores ownership, FIFOs and trusted state only as root")
	}
	replicatest.Run(t, replicatest.Harness{
		New:  newMirror,
		Tree: mirrorTree,
	})
}

func TestLimitedMirror(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the Mirror restores ownership, FIFOs and trusted state only as root")
	}
	replicatest.Run(t, replicatest.Harness{
		New:  func(t *testing.T) replica.Target { return replica.Limit(newMirror(t), 1<<30) },
		Tree: mirrorTree,
	})
}

func memoryTree(t *testing.T, tg replica.Target) map[string]replicatest.Entry {
	mem := replica.Unwrap(tg).(*replica.Memory)
	out := map[string]replicatest.Entry{}
	for p, f := range mem.Files() {
		e := replicatest.Entry{Type: f.Type, Mode: f.Stat.Mode & 0o7777, UID: f.Stat.UID, GID: f.Stat.GID,
			Mtime: f.Stat.Mtime, Data: f.Data, Link: f.Link}
		switch f.Type {
		case bacularec.TypeRegEmpty:
			e.Type = bacularec.TypeReg
		case bacularec.TypeSpecial:
			e.Special = f.Stat.Mode & unix.S_IFMT
		}
		if f.Type != bacularec.TypeSymlink {
			e.Link = ""
		}
		for _, x := range f.Xattrs {
			if e.Xattrs == nil {
				e.Xattrs = map[string]string{}
			}
			e.Xattrs[x.Name] = string(x.Value)
		}
		for _, a := range f.ACLs {
			if a.Stream == bacularec.StreamACLLinuxAccess {
				e.ACL = replicatest.CanonACL(a.Text)
			}
		}
		out[p] = e
	}
	return out
}

// newMirror makes a Mirror whose root is alone in a directory of its own:
// mirrorTree reports whatever else appears in that directory, which is
// what escaped the root.
func newMirror(t *testing.T) replica.Target {
	return replica.NewMirror(filepath.Join(t.TempDir(), "root"), replica.MirrorOptions{})
}

func mirrorTree(t *testing.T, tg replica.Target) map[string]replicatest.Entry {
	t.Helper()
	root := replica.Unwrap(tg).(*replica.Mirror).Root()
	out := map[string]replicatest.Entry{}
	type inode struct{ dev, ino uint64 }
	links := map[inode][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		if p == filepath.Join(root, replica.VersionsDir) {
			// Retention's previous versions: not part of the tree. (A
			// Mirror refuses the path, so it has none.)
			if !d.IsDir() {
				t.Errorf("%s is not a directory", p)
			}
			return filepath.SkipDir
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		key := "/" + filepath.ToSlash(rel)
		e, st, err := readEntry(p)
		if err != nil {
			return err
		}
		if e.Type == bacularec.TypeReg && st.Nlink > 1 {
			id := inode{st.Dev, st.Ino}
			links[id] = append(links[id], key)
		}
		out[key] = e
		return nil
	})
	if err != nil {
		t.Fatalf("reading the mirror: %v", err)
	}
	for _, paths := range links {
		if len(paths) < 2 {
			continue // its other name is a previous version
		}
		slices.Sort(paths)
		for _, p := range paths[1:] {
			e := out[p]
			e.HardLinkOf = paths[0]
			out[p] = e
		}
	}
	// Escapes: anything next to the root.
	ents, err := os.ReadDir(filepath.Dir(root))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ents {
		if d.Name() == filepath.Base(root) {
			continue
		}
		e, _, err := readEntry(filepath.Join(filepath.Dir(root), d.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out["/../"+d.Name()] = e
	}
	return out
}

// readEntry reads what is at p without following a symbolic link.
func readEntry(p string) (replicatest.Entry, *unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return replicatest.Entry{}, nil, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	e := replicatest.Entry{Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Mtime: st.Mtim.Sec}
	var err error
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.Type = bacularec.TypeReg
		if e.Data, err = os.ReadFile(p); err != nil {
			return e, nil, err
		}
		e.Holes = st.Blocks*512 < st.Size
	case unix.S_IFDIR:
		e.Type = bacularec.TypeDirEnd
	case unix.S_IFLNK:
		e.Type = bacularec.TypeSymlink
		if e.Link, err = os.Readlink(p); err != nil {
			return e, nil, err
		}
	default:
		e.Type = bacularec.TypeSpecial
		e.Special = st.Mode & unix.S_IFMT
	}
	if e.Xattrs, err = xattrs(p); err != nil {
		return e, nil, err
	}
	if e.Type != bacularec.TypeSymlink {
		v, err := getxattr(p, "system.posix_acl_access")
		switch {
		case errors.Is(err, unix.ENODATA) || errors.Is(err, unix.EOPNOTSUPP):
		case err != nil:
			return e, nil, err
		default:
			if e.ACL, err = replicatest.DecodeACLXattr(v); err != nil {
				return e, nil, err
			}
		}
	}
	return e, &st, nil
}

// xattrs returns the extended attributes of p, leaving out ACLs (system.)
// and labels the system puts on (security.).
func xattrs(p string) (map[string]string, error) {
	var buf []byte
	for size := 256; ; size *= 2 {
		buf = make([]byte, size)
		n, err := unix.Llistxattr(p, buf)
		if err == unix.ERANGE {
			continue
		}
		if err == unix.ENOTSUP {
			return nil, nil
		}
		if err != nil {
			return nil, &fs.PathError{Op: "llistxattr", Path: p, Err: err}
		}
		buf = buf[:n]
		break
	}
	var out map[string]string
	for name := range strings.SplitSeq(strings.TrimSuffix(string(buf), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, "system.") || strings.HasPrefix(name, "security.") {
			continue
		}
		v, err := getxattr(p, name)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = string(v)
	}
	return out, nil
}

func getxattr(p, name string) ([]byte, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(p, name, buf)
		if err == unix.ERANGE {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "lgetxattr " + name, Path: p, Err: err}
		}
		return buf[:n], nil
	}
}

func TestCanonACL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"user::rw-\ngroup::r--\nother::r--\n", ""},
		{"u::rw,g::r,o::r", ""},
		{"user::rw-\nuser:1234:r--\ngroup::r--\nmask::r--\nother::---\n", "u::rw-,u:1234:r--,g::r--,m::r--,o::---"},
		// Missing mask computed; order fixed; comments dropped.
		{"other::--- # c\ngroup:20:rwx\nuser:100:r\nuser:9:x\nuser::rwx\ngroup::r-x",
			"u::rwx,u:9:--x,u:100:r--,g::r-x,g:20:rwx,m::rwx,o::---"},
		{"user::rw-\nbogus::r--", "?user::rw-\nbogus::r--"},
	} {
		if got := replicatest.CanonACL(tc.in); got != tc.want {
			t.Errorf("CanonACL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// The xattr form of the same ACL gives the same text.
	x := []byte{2, 0, 0, 0,
		0x01, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
		0x02, 0, 4, 0, 0xd2, 0x04, 0, 0, // user:1234:r--
		0x04, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
	got, err := replicatest.DecodeACLXattr(x)
	if want := "u::rw-,u:1234:r--,g::r--,m::r--,o::---"; err != nil || got != want {
		t.Errorf("DecodeACLXattr = %q, %v; want %q", got, err, want)
	}
	if _, err := replicatest.DecodeACLXattr([]byte{1, 0, 0, 0}); err == nil {
		t.Error("DecodeACLXattr accepted version 1")
	}
}
