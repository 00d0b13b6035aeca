//go:build integration

package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// entry is the state of one path of a tree, from lstat and the file itself.
type entry struct {
	Type   string // reg dir lnk fifo chr blk sock
	Perm   uint32 // st_mode & 07777 (setuid, setgid, sticky included)
	UID    uint32
	GID    uint32
	Size   int64
	Mtime  int64 // seconds: Bacula keeps whole seconds
	Atime  int64
	Rdev   uint64
	Target string // symlink target
	SHA256 string // regular file content
	Blocks int64  // st_blocks (512-byte units)
	Nlink  uint64
	Ino    uint64
	Xattrs map[string]string // every namespace, system.posix_acl_* included (raw values)
	Link   string            // hard links: the sorted names of the inode in this tree
}

// tree is a snapshot of every path under Root ("." is Root itself).
type tree struct {
	Root         string
	Entries      map[string]*entry
	BlockSectors int64 // file system block size in 512-byte units
	source       bool
}

// snapshot walks root with lstat, reading files and directories with
// O_NOATIME so that taking it changes no access time. Only reading a
// symbolic link (readlink has no O_NOATIME) may update its atime: the
// entry keeps the atime found before (the extractor's work).
func snapshot(t *testing.T, root string) *tree {
	t.Helper()
	return snapshotMode(t, root, false)
}

// sourceSnapshot is snapshot for a tree about to be backed up: a
// symlink's atime is taken after the snapshot's own readlink, since that
// updated it (relatime) and the FD lstats the link before it reads it, so
// the backup records the updated value.
func sourceSnapshot(t *testing.T, root string) *tree {
	t.Helper()
	return snapshotMode(t, root, true)
}

func snapshotMode(t *testing.T, root string, source bool) *tree {
	t.Helper()
	tr := &tree{Root: root, Entries: map[string]*entry{}, source: source}
	var fs unix.Statfs_t
	if err := unix.Statfs(root, &fs); err != nil {
		t.Fatalf("statfs %s: %v", root, err)
	}
	tr.BlockSectors = fs.Bsize / 512
	if err := tr.walk("."); err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	inodes := map[uint64][]string{}
	for p, e := range tr.Entries {
		if e.Type == "reg" && e.Nlink > 1 {
			inodes[e.Ino] = append(inodes[e.Ino], p)
		}
	}
	for _, names := range inodes {
		sort.Strings(names)
		var q []string
		for _, n := range names {
			q = append(q, strconv.Quote(n))
		}
		g := strings.Join(q, " ")
		for _, n := range names {
			tr.Entries[n].Link = g
		}
	}
	return tr
}

func (tr *tree) path(rel string) string {
	if rel == "." {
		return tr.Root
	}
	return tr.Root + "/" + rel
}

func join(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}

func (tr *tree) walk(rel string) error {
	p := tr.path(rel)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err
	}
	e := &entry{Perm: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Size: st.Size,
		Mtime: st.Mtim.Sec, Atime: st.Atim.Sec, Blocks: st.Blocks, Nlink: uint64(st.Nlink), Ino: st.Ino}
	tr.Entries[rel] = e
	var err error
	if e.Xattrs, err = xattrs(p); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.Type = "reg"
		e.SHA256, err = hashFile(p)
		return err
	case unix.S_IFLNK:
		e.Type = "lnk"
		if e.Target, err = os.Readlink(p); err != nil {
			return err
		}
		if tr.source {
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			e.Atime = st.Atim.Sec
		}
		return nil
	case unix.S_IFIFO:
		e.Type = "fifo"
	case unix.S_IFCHR:
		e.Type, e.Rdev = "chr", st.Rdev
	case unix.S_IFBLK:
		e.Type, e.Rdev = "blk", st.Rdev
	case unix.S_IFSOCK:
		e.Type = "sock"
	case unix.S_IFDIR:
		e.Type = "dir"
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_NOATIME|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: p, Err: err}
		}
		f := os.NewFile(uintptr(fd), p)
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return err
		}
		sort.Strings(names)
		for _, n := range names {
			if err := tr.walk(join(rel, n)); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%s: unknown file type %o", p, st.Mode)
	}
	return nil
}

func hashFile(p string) (string, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOATIME|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", &os.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// xattrs returns every extended attribute of p (not following a symlink).
func xattrs(p string) (map[string]string, error) {
	buf := make([]byte, 4096)
	var n int
	var err error
	for {
		n, err = unix.Llistxattr(p, buf)
		if err == unix.ERANGE {
			buf = make([]byte, len(buf)*4)
			continue
		}
		break
	}
	if err == unix.ENOTSUP {
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "llistxattr", Path: p, Err: err}
	}
	var m map[string]string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 4096)
		for {
			n, err = unix.Lgetxattr(p, name, v)
			if err == unix.ERANGE {
				v = make([]byte, len(v)*4)
				continue
			}
			break
		}
		if err != nil {
			return nil, &os.PathError{Op: "lgetxattr " + name, Path: p, Err: err}
		}
		if m == nil {
			m = map[string]string{}
		}
		m[name] = string(v[:n])
	}
	return m, nil
}

// Counters of a tree, for the per-case log lines.
func (tr *tree) counts() (files, dirs, links, specials, withXattrs int, bytes int64) {
	for _, e := range tr.Entries {
		switch e.Type {
		case "reg":
			files++
			bytes += e.Size
		case "dir":
			dirs++
		case "lnk":
			links++
		default:
			specials++
		}
		if len(e.Xattrs) > 0 {
			withXattrs++
		}
	}
	return
}

// regBlocks sums st_blocks of the regular files (a hard-linked inode once).
func (tr *tree) regBlocks() int64 {
	var b int64
	seen := map[uint64]bool{}
	for _, e := range tr.Entries {
		if e.Type == "reg" && !seen[e.Ino] {
			seen[e.Ino] = true
			b += e.Blocks
		}
	}
	return b
}

// cmpOpt selects what compareTrees compares. Type, permission bits, owner,
// size (not of directories), mtime, content, symlink target, device
// numbers and hard-link groups are always compared.
type cmpOpt struct {
	Atime    bool // compare access times
	Xattrs   bool // compare extended attributes (ACLs included)
	BlocksLE bool // regular files: A's st_blocks <= B's (A at most as allocated)
}

// difference is one field of one path that differs between trees A and B.
type difference struct {
	Path, Field, A, B string
}

func (d difference) String() string {
	return fmt.Sprintf("%s: %s: A=%s B=%s", strconv.Quote(d.Path), d.Field, d.A, d.B)
}

func (d difference) key() string { return d.Path + "\t" + d.Field }

// compareTrees compares a and b path by path; it returns the number of
// paths compared (present in both) and the differences, sorted.
func compareTrees(a, b *tree, o cmpOpt) (int, []difference) {
	var diffs []difference
	add := func(p, f string, x, y any) {
		diffs = append(diffs, difference{p, f, fmt.Sprint(x), fmt.Sprint(y)})
	}
	n := 0
	for p, x := range a.Entries {
		y, ok := b.Entries[p]
		if !ok {
			add(p, "presence", x.Type, "absent")
			continue
		}
		n++
		if x.Type != y.Type {
			add(p, "type", x.Type, y.Type)
			continue
		}
		if x.Perm != y.Perm {
			add(p, "mode", fmt.Sprintf("%04o", x.Perm), fmt.Sprintf("%04o", y.Perm))
		}
		if x.UID != y.UID || x.GID != y.GID {
			add(p, "owner", fmt.Sprintf("%d:%d", x.UID, x.GID), fmt.Sprintf("%d:%d", y.UID, y.GID))
		}
		if x.Type == "reg" && x.Size != y.Size {
			add(p, "size", x.Size, y.Size)
		}
		if x.SHA256 != y.SHA256 {
			add(p, "content", x.SHA256, y.SHA256)
		}
		if x.Target != y.Target {
			add(p, "target", strconv.Quote(x.Target), strconv.Quote(y.Target))
		}
		if x.Rdev != y.Rdev {
			add(p, "rdev", fmt.Sprintf("%d,%d", unix.Major(x.Rdev), unix.Minor(x.Rdev)), fmt.Sprintf("%d,%d", unix.Major(y.Rdev), unix.Minor(y.Rdev)))
		}
		if x.Link != y.Link {
			add(p, "hardlink", x.Link, y.Link)
		}
		if x.Mtime != y.Mtime {
			add(p, "mtime", x.Mtime, y.Mtime)
		}
		if o.Atime && x.Atime != y.Atime {
			add(p, "atime", x.Atime, y.Atime)
		}
		if o.Xattrs && !maps.Equal(x.Xattrs, y.Xattrs) {
			add(p, "xattrs", fmtXattrs(x.Xattrs), fmtXattrs(y.Xattrs))
		}
		if o.BlocksLE && x.Type == "reg" {
			// ext4 keeps the xattrs that do not fit in the inode in one
			// extra block, counted in st_blocks: where A has xattrs that B
			// lacks, A may have that block more.
			slack := int64(0)
			if len(x.Xattrs) > len(y.Xattrs) {
				slack = a.BlockSectors
			}
			if x.Blocks > y.Blocks+slack {
				add(p, "blocks", x.Blocks, fmt.Sprintf("%d (A allocates more)", y.Blocks))
			}
		}
	}
	for p, y := range b.Entries {
		if _, ok := a.Entries[p]; !ok {
			add(p, "presence", "absent", y.Type)
		}
	}
	slices.SortFunc(diffs, func(x, y difference) int { return strings.Compare(x.key(), y.key()) })
	return n, diffs
}

func fmtXattrs(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	var s []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		if len(v) > 24 {
			v = fmt.Sprintf("%x...(%d bytes)", v[:24], len(v))
		} else {
			v = fmt.Sprintf("%x", v)
		}
		s = append(s, k+"="+v)
	}
	return "{" + strings.Join(s, ",") + "}"
}

// cmpResult counts what expectDiffs found.
type cmpResult struct {
	Compared   int // paths present in both trees
	Diffs      int // differences (path, field) found
	Expected   int // of them, required ones
	Tolerated  int // of them, allowed ones
	Unexpected int // of them, neither (test failure)
	Missing    int // required differences not found (test failure)
	diffs      []difference
}

func (r cmpResult) String() string {
	return fmt.Sprintf("%d paths compared, %d differences (%d expected, %d tolerated, %d unexpected, %d expected but absent)",
		r.Compared, r.Diffs, r.Expected, r.Tolerated, r.Unexpected, r.Missing)
}

// expectDiffs checks that compareTrees(a, b, o) finds exactly the
// differences whose keys (path, field) are in want (nil: none), plus any of
// those in allow, and logs a summary line.
func expectDiffs(t *testing.T, what string, a, b *tree, o cmpOpt, want, allow map[string]bool) cmpResult {
	t.Helper()
	n, diffs := compareTrees(a, b, o)
	r := cmpResult{Compared: n, Diffs: len(diffs), diffs: diffs}
	var unexpected []difference
	got := map[string]bool{}
	for _, d := range diffs {
		got[d.key()] = true
		switch {
		case want[d.key()]:
			r.Expected++
		case allow[d.key()]:
			r.Tolerated++
		default:
			unexpected = append(unexpected, d)
		}
	}
	var missing []string
	for k := range want {
		if !got[k] {
			missing = append(missing, strings.Replace(k, "\t", ": ", 1))
		}
	}
	sort.Strings(missing)
	r.Unexpected, r.Missing = len(unexpected), len(missing)
	t.Logf("%s: %s", what, r)
	if n == 0 {
		t.Errorf("%s: nothing compared (A=%s B=%s)", what, a.Root, b.Root)
	}
	const max = 40
	for i, d := range unexpected {
		if i == max {
			t.Errorf("%s: ... %d more unexpected differences", what, len(unexpected)-max)
			break
		}
		t.Errorf("%s: unexpected difference %s", what, d)
	}
	for i, k := range missing {
		if i == max {
			t.Errorf("%s: ... %d more missing expected differences", what, len(missing)-max)
			break
		}
		t.Errorf("%s: expected difference not found: %s", what, k)
	}
	return r
}

// sub returns the snapshot of the backed-up directory src as extracted
// under out (out/<absolute path of src>).
func sub(t *testing.T, out, src string) *tree {
	t.Helper()
	p := filepath.Join(out, src)
	if _, err := os.Lstat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			t.Fatalf("extraction %s has no %s", out, src)
		}
		t.Fatal(err)
	}
	return snapshot(t, p)
}

// checkSourceFeatures fails unless the snapshot of a make-tree.sh tree has
// the features the option sets are meant to exercise (so that an empty or
// degraded tree cannot make the comparisons pass vacuously).
func checkSourceFeatures(t *testing.T, src *tree) {
	t.Helper()
	var hard, fifo, chr, blk, lnk, sparse, acl, defacl, user, trusted, setuid, sticky, utf8Names, space, nl, nonUTF8, long, uid int
	for p, e := range src.Entries {
		switch e.Type {
		case "fifo":
			fifo++
		case "chr":
			chr++
		case "blk":
			blk++
		case "lnk":
			lnk++
		case "reg":
			if e.Link != "" {
				hard++
			}
			if e.Blocks*512 < e.Size/2 {
				sparse++
			}
		}
		for k := range e.Xattrs {
			switch {
			case k == "system.posix_acl_access":
				acl++
			case k == "system.posix_acl_default":
				defacl++
			case strings.HasPrefix(k, "user."):
				user++
			case strings.HasPrefix(k, "trusted."):
				trusted++
			}
		}
		if e.Perm&0o4000 != 0 {
			setuid++
		}
		if e.Perm&0o1000 != 0 {
			sticky++
		}
		if strings.ContainsRune(p, '日') {
			utf8Names++
		}
		if strings.Contains(p, " ") {
			space++
		}
		if strings.Contains(p, "\n") {
			nl++
		}
		if !utf8.ValidString(p) {
			nonUTF8++
		}
		if len(p) > 800 {
			long++
		}
		if e.UID == 4000000000 {
			uid++
		}
	}
	for _, c := range []struct {
		what string
		n    int
	}{{"hard-linked files", hard}, {"FIFOs", fifo}, {"char devices", chr}, {"block devices", blk},
		{"symlinks", lnk}, {"sparse files", sparse}, {"access ACLs", acl}, {"default ACLs", defacl},
		{"user.* xattrs", user}, {"trusted.* xattrs", trusted}, {"setuid files", setuid}, {"sticky dirs", sticky},
		{"UTF-8 names", utf8Names}, {"names with spaces", space}, {"names with newlines", nl},
		{"non-UTF-8 names", nonUTF8}, {"paths > 800 bytes", long}, {"uid 4000000000", uid}} {
		if c.n == 0 {
			t.Errorf("source tree %s has no %s: make-tree.sh changed?", src.Root, c.what)
		}
	}
}
