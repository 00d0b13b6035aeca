package replica

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openbrc/brc/internal/extract"
)

// ErrNoVersion: the path has no previous version of that name under the
// target's VersionsDir.
var ErrNoVersion = errors.New("replica: no such version")

// Version is a previous version of a file kept by a Retention target.
type Version struct {
	Path  string      // the file's path under the root, "/etc/hosts"
	Name  string      // the version's name: see VersionName
	JobID uint32      // job that wrote this version (0: unknown)
	Time  time.Time   // when that job wrote it (UTC; the file's mtime when unknown)
	Size  int64       // bytes (a symbolic link: the length of its target)
	Mode  fs.FileMode // type and permissions
	Link  string      // symbolic links: the target
}

// versionTimeLayout is the time part of a version name.
const versionTimeLayout = "20060102T150405Z"

// VersionName returns the name a version written by job jobID at t is
// kept under: "20261127T044837Z-job13" (t in UTC, to the second). A second
// version with the same name gets ".2", ".3" ... appended (seq > 1).
func VersionName(t time.Time, jobID uint32, seq int) string {
	n := t.UTC().Format(versionTimeLayout) + "-job" + strconv.FormatUint(uint64(jobID), 10)
	if seq > 1 {
		n += "." + strconv.Itoa(seq)
	}
	return n
}

// ParseVersionName reads what VersionName wrote; ok is false for any
// other name.
func ParseVersionName(name string) (t time.Time, jobID uint32, seq int, ok bool) {
	ts, rest, found := strings.Cut(name, "-job")
	if !found || len(ts) != len(versionTimeLayout) {
		return time.Time{}, 0, 0, false
	}
	t, err := time.Parse(versionTimeLayout, ts)
	if err != nil {
		return time.Time{}, 0, 0, false
	}
	id, sq, hasSeq := strings.Cut(rest, ".")
	if !digits(id) {
		return time.Time{}, 0, 0, false
	}
	j, err := strconv.ParseUint(id, 10, 32)
	if err != nil {
		return time.Time{}, 0, 0, false
	}
	seq = 1
	if hasSeq {
		if !digits(sq) {
			return time.Time{}, 0, 0, false
		}
		if seq, err = strconv.Atoi(sq); err != nil || seq < 2 {
			return time.Time{}, 0, 0, false
		}
	}
	return t.UTC(), uint32(j), seq, true
}

func digits(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// newerFirst orders versions newest first: by time, then JobId, then
// sequence number.
func newerFirst(a, b string) int {
	ta, ja, sa, _ := ParseVersionName(a)
	tb, jb, sb, _ := ParseVersionName(b)
	if c := tb.Compare(ta); c != 0 {
		return c
	}
	if c := cmp.Compare(jb, ja); c != 0 {
		return c
	}
	return cmp.Compare(sb, sa)
}

// cleanRel turns a path under the root into a relative one: leading and
// trailing slashes, empty and "." components dropped; ".." and NUL are
// refused. "" is the root itself.
func cleanRel(p string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("%w: %q holds a NUL byte", ErrUnsafePath, p)
	}
	var parts []string
	for c := range strings.SplitSeq(p, "/") {
		switch c {
		case "", ".":
		case "..":
			return "", fmt.Errorf("%w: %q has a \"..\" component", ErrUnsafePath, p)
		default:
			parts = append(parts, c)
		}
	}
	return strings.Join(parts, "/"), nil
}

// isReserved reports whether rel (clean) is VersionsDir or below it.
func isReserved(rel string) bool {
	return rel == VersionsDir || strings.HasPrefix(rel, VersionsDir+"/")
}

// splitRel splits a clean relative path into its directory ("" for the
// root) and last component.
func splitRel(rel string) (dir, name string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return "", rel
}

// openRoot opens root as an O_PATH directory.
func openRoot(root string) (int, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	return fd, nil
}

// errNotDir is returned by walkDir when a component is neither a
// directory nor a symbolic link; at tells which one.
type errNotDir struct{ at string }

func (e *errNotDir) Error() string { return e.at + ": not a directory" }
func (e *errNotDir) Unwrap() error { return unix.ENOTDIR }

// errSymlinkAt is returned by walkDir when a component is a symbolic link.
type errSymlinkAt struct{ at string }

func (e *errSymlinkAt) Error() string {
	return fmt.Sprintf("%v: %s is a symbolic link", ErrUnsafePath, e.at)
}
func (e *errSymlinkAt) Unwrap() error { return ErrUnsafePath }

// walkDir opens the directory rel (clean; "" is dirfd itself) below dirfd
// as an O_PATH fd the caller closes, one component at a time, never
// following a symbolic link (*errSymlinkAt). With mkdir, missing
// directories are made with perm. A component that is something else is
// an *errNotDir; a missing one, with mkdir unset, ENOENT.
func walkDir(dirfd int, rel string, mkdir bool, perm uint32) (int, error) {
	const flags = unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if rel == "" {
		return unix.Openat(dirfd, ".", flags, 0)
	}
	if !mkdir {
		// One call when the kernel can check the whole path for us.
		how := unix.OpenHow{Flags: flags &^ unix.O_NOFOLLOW,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
		if fd, err := unix.Openat2(dirfd, rel, &how); err == nil {
			return fd, nil
		} else if err == unix.ENOENT {
			return -1, err
		}
	}
	cur := -1 // -1: dirfd (not ours)
	at := func() int {
		if cur < 0 {
			return dirfd
		}
		return cur
	}
	done := 0
	for c := range strings.SplitSeq(rel, "/") {
		end := done + len(c)
		fd, err := unix.Openat(at(), c, flags, 0)
		if err == unix.ENOENT && mkdir {
			if err = unix.Mkdirat(at(), c, perm); err == nil || err == unix.EEXIST {
				fd, err = unix.Openat(at(), c, flags, 0)
			}
		}
		if err == unix.ENOTDIR || err == unix.ELOOP {
			var st unix.Stat_t
			if unix.Fstatat(at(), c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = &errSymlinkAt{at: rel[:end]}
			} else {
				err = &errNotDir{at: rel[:end]}
			}
		}
		if cur >= 0 {
			unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		cur = fd
		done = end + 1
	}
	return cur, nil
}

// versionsDirOf returns the directory, relative to the root, that holds
// the versions of rel.
func versionsDirOf(rel string) string { return VersionsDir + "/" + rel }

// linkVersion keeps what is at name in pfd (a regular file or symbolic
// link, stat st) as version vname of rel: a hard link under the root's
// VersionsDir, never a copy. When vname is taken by another file, ".2",
// ".3" ... are tried. It returns the name used.
func linkVersion(rootFD, pfd int, name, rel, vname string, st *unix.Stat_t) (string, error) {
	vfd, err := walkDir(rootFD, versionsDirOf(rel), true, 0o700)
	if err != nil {
		return "", err
	}
	defer unix.Close(vfd)
	base := vname
	for seq := 1; seq < 1000; seq++ {
		if seq > 1 {
			base = vname + "." + strconv.Itoa(seq)
		}
		// No AT_SYMLINK_FOLLOW: a symbolic link is linked itself.
		err := unix.Linkat(pfd, name, vfd, base, 0)
		if err == nil {
			return base, nil
		}
		if err != unix.EEXIST {
			return "", err
		}
		var vst unix.Stat_t
		if unix.Fstatat(vfd, base, &vst, unix.AT_SYMLINK_NOFOLLOW) == nil && vst.Dev == st.Dev && vst.Ino == st.Ino {
			return base, nil // kept already (a job replayed after a crash)
		}
	}
	return "", fmt.Errorf("too many versions named %s: %w", vname, unix.EEXIST)
}

// ListVersions returns the previous versions kept of path (a path under
// root: "/etc/hosts" is ROOT/etc/hosts, after any strip_prefix), newest
// first. A path without versions gives none and no error.
func ListVersions(root, path string) ([]Version, error) {
	rel, err := cleanRel(path)
	if err != nil {
		return nil, err
	}
	if rel == "" || isReserved(rel) {
		return nil, fmt.Errorf("%w: %s has no versions", ErrUnsafePath, path)
	}
	rootFD, err := openRoot(root)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rootFD)
	names, vfd, err := versionNames(rootFD, rel)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("replica: versions of %s: %w", path, err)
	}
	defer unix.Close(vfd)
	out := make([]Version, 0, len(names))
	for _, n := range names {
		v, err := statVersion(vfd, "/"+rel, n)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return nil, fmt.Errorf("replica: version %s of %s: %w", n, path, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// versionNames opens rel's versions directory and returns the names of
// the versions in it (directories, which hold the versions of paths
// below rel, left out), newest first.
func versionNames(rootFD int, rel string) ([]string, int, error) {
	vfd, err := walkDir(rootFD, versionsDirOf(rel), false, 0)
	if err != nil {
		return nil, -1, err
	}
	dfd, err := unix.Openat(vfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(vfd)
		return nil, -1, err
	}
	d := os.NewFile(uintptr(dfd), versionsDirOf(rel))
	ents, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		unix.Close(vfd)
		return nil, -1, err
	}
	var names []string
	for _, e := range ents {
		if _, _, _, ok := ParseVersionName(e.Name()); ok && !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	slices.SortFunc(names, newerFirst)
	return names, vfd, nil
}

func statVersion(vfd int, path, name string) (Version, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(vfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return Version{}, err
	}
	t, job, _, _ := ParseVersionName(name)
	v := Version{Path: path, Name: name, JobID: job, Time: t, Size: st.Size, Mode: fileMode(st.Mode)}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		l, err := readlinkat(vfd, name)
		if err != nil {
			return Version{}, err
		}
		v.Link = l
	}
	return v, nil
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// fileMode converts a st_mode to an fs.FileMode.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// RestoreVersion brings back version name of path (a path under root, as
// for ListVersions).
//
// With dst empty, the version becomes the current file at path again,
// atomically: it is copied (with its owner when run as root, mode, times
// and xattrs, ACLs included) to a temporary name next to path, flushed,
// and renamed over path, so path holds the old file or the whole
// restored one. What path held, a regular file or symbolic link, is kept
// as a version first, named from the time of the restore and JobId 0 (the
// newest version, then), so that a restore can be undone. Missing parent directories are made (0755); a directory at
// path, or a symbolic link on the way, is refused.
//
// With dst set, the version is copied to dst instead (the same way,
// atomically); when dst is an existing directory, to dst/<base name of
// path>. The target is not touched.
func RestoreVersion(root, path, name, dst string) error {
	rel, err := cleanRel(path)
	if err != nil {
		return err
	}
	if rel == "" || isReserved(rel) {
		return fmt.Errorf("%w: %s has no versions", ErrUnsafePath, path)
	}
	if _, _, _, ok := ParseVersionName(name); !ok {
		return fmt.Errorf("%w: %q is not a version name (like 20261127T044837Z-job13)", ErrNoVersion, name)
	}
	rootFD, err := openRoot(root)
	if err != nil {
		return err
	}
	defer unix.Close(rootFD)
	names, vfd, err := versionNames(rootFD, rel)
	if errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%w: %s has no versions under %s", ErrNoVersion, path, root)
	}
	if err != nil {
		return fmt.Errorf("replica: versions of %s: %w", path, err)
	}
	defer unix.Close(vfd)
	if !slices.Contains(names, name) {
		return fmt.Errorf("%w: %s has no version %s (it has: %s)", ErrNoVersion, path, name, strings.Join(names, ", "))
	}
	var st unix.Stat_t
	if err := unix.Fstatat(vfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("replica: version %s of %s: %w", name, path, err)
	}
	if dst != "" {
		if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
			_, base := splitRel(rel)
			dst = filepath.Join(dst, base)
		}
		dfd, err := unix.Open(filepath.Dir(dst), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &fs.PathError{Op: "open", Path: filepath.Dir(dst), Err: err}
		}
		defer unix.Close(dfd)
		if err := copyVersion(vfd, name, &st, dfd, filepath.Base(dst)); err != nil {
			return fmt.Errorf("replica: restoring version %s of %s to %s: %w", name, path, dst, err)
		}
		return nil
	}
	dir, base := splitRel(rel)
	pfd, err := walkDir(rootFD, dir, true, 0o755)
	if err != nil {
		return fmt.Errorf("replica: restoring %s: %w", path, err)
	}
	defer unix.Close(pfd)
	var cur unix.Stat_t
	switch err := unix.Fstatat(pfd, base, &cur, unix.AT_SYMLINK_NOFOLLOW); {
	case err == unix.ENOENT:
	case err != nil:
		return fmt.Errorf("replica: restoring %s: %w", path, err)
	case cur.Mode&unix.S_IFMT == unix.S_IFDIR:
		return fmt.Errorf("replica: restoring %s: a directory is there", path)
	case cur.Dev == st.Dev && cur.Ino == st.Ino:
		return nil // that version is the current file already
	case cur.Mode&unix.S_IFMT == unix.S_IFREG || cur.Mode&unix.S_IFMT == unix.S_IFLNK:
		if _, err := linkVersion(rootFD, pfd, base, rel, VersionName(time.Now(), 0, 1), &cur); err != nil {
			return fmt.Errorf("replica: restoring %s: keeping the current file as a version: %w", path, err)
		}
	}
	if err := copyVersion(vfd, name, &st, pfd, base); err != nil {
		return fmt.Errorf("replica: restoring version %s of %s: %w", name, path, err)
	}
	return nil
}

// copyVersion copies version name in vfd (stat st) to name dst in dfd:
// under a temporary name first, with its metadata, flushed, then renamed
// over dst, and dfd flushed.
func copyVersion(vfd int, name string, st *unix.Stat_t, dfd int, dst string) error {
	seed := make([]byte, 6)
	rand.Read(seed)
	tmp := extract.TempPrefix + "restore." + hex.EncodeToString(seed)
	owner := os.Geteuid() == 0
	ts := []unix.Timespec{unix.NsecToTimespec(st.Atim.Nano()), unix.NsecToTimespec(st.Mtim.Nano())}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		target, err := readlinkat(vfd, name)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(target, dfd, tmp); err != nil {
			return err
		}
		if owner {
			unix.Fchownat(dfd, tmp, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
		}
		unix.UtimesNanoAt(dfd, tmp, ts, unix.AT_SYMLINK_NOFOLLOW)
	case unix.S_IFREG:
		sfd, err := unix.Openat(vfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		src := os.NewFile(uintptr(sfd), name)
		defer src.Close()
		tfd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		out := os.NewFile(uintptr(tfd), tmp)
		err = func() error {
			if _, err := io.Copy(out, src); err != nil {
				return err
			}
			if owner {
				if err := unix.Fchown(tfd, int(st.Uid), int(st.Gid)); err != nil {
					return err
				}
			}
			// After chown, which clears setuid, setgid and capabilities;
			// an access ACL set afterwards agrees with the mode.
			if err := unix.Fchmod(tfd, st.Mode&0o7777); err != nil {
				return err
			}
			if err := copyXattrs(sfd, tfd); err != nil {
				return err
			}
			if err := unix.UtimesNanoAt(dfd, tmp, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
			return out.Sync()
		}()
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			unix.Unlinkat(dfd, tmp, 0)
			return err
		}
	default:
		return fmt.Errorf("not a regular file nor a symbolic link (mode %#o)", st.Mode)
	}
	if err := unix.Renameat(dfd, tmp, dfd, dst); err != nil {
		unix.Unlinkat(dfd, tmp, 0)
		return err
	}
	return syncFD(dfd)
}

// syncFD flushes the directory dirfd (an O_PATH fd is reopened).
func syncFD(dirfd int) error {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fsync(fd)
}

// copyXattrs copies the extended attributes of src to dst (ACLs are the
// system.posix_acl_* ones). A file system without xattrs is no error.
func copyXattrs(src, dst int) error {
	var buf []byte
	for size := 1024; ; size *= 2 {
		buf = make([]byte, size)
		n, err := unix.Flistxattr(src, buf)
		if err == unix.ERANGE {
			continue
		}
		if err == unix.ENOTSUP {
			return nil
		}
		if err != nil {
			return err
		}
		buf = buf[:n]
		break
	}
	for name := range strings.SplitSeq(strings.TrimSuffix(string(buf), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		var v []byte
		for size := 256; ; size *= 2 {
			v = make([]byte, size)
			n, err := unix.Fgetxattr(src, name, v)
			if err == unix.ERANGE {
				continue
			}
			if err != nil {
				return err
			}
			v = v[:n]
			break
		}
		if err := unix.Fsetxattr(dst, name, v, 0); err != nil && err != unix.ENOTSUP && err != unix.EPERM {
			return fmt.Errorf("setxattr %s: %w", name, err)
		}
	}
	return nil
}
