//go:build linux

package extract

import (
	"runtime"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/openbrc/brc/bacularec"
)

// target is what metadata is applied to: an open fd (regular files,
// directories, FIFOs), or else a name in a directory fd, never followed
// (symbolic links, device nodes).
type target struct {
	fd    int
	dirfd int
	name  string
	link  bool // a symbolic link: no mode, no ACLs
}

// meta applies ownership, xattrs, mode, ACLs and times, in that order:
// chown first as it clears setuid/setgid and file capabilities; xattrs
// before chmod because user.* xattrs need write permission on the inode,
// which a read-only mode would take away from an unprivileged owner; ACLs
// after chmod (they set the group-class bits); times last. Failing xattrs
// are warnings; the first other failure is returned, after trying the
// remaining steps.
func (w *Writer) meta(t target, f *bacularec.File, isDir bool) error {
	st := &f.Stat
	var first error
	rec := func(op string, err error) {
		if err != nil && first == nil {
			first = opErr(op, err)
		}
	}
	if w.owner {
		if t.fd >= 0 {
			rec("chown", unix.Fchown(t.fd, int(st.UID), int(st.GID)))
		} else {
			rec("chown", unix.Fchownat(t.dirfd, t.name, int(st.UID), int(st.GID), unix.AT_SYMLINK_NOFOLLOW))
		}
	}
	if !w.opt.NoXattrs {
		for _, x := range f.Xattrs {
			if err := w.setxattr(t, x.Name, x.Value); err != nil {
				w.warnf("extract: %s: xattr %s not set: %v", quotePath(f.Path), x.Name, err)
			}
		}
	}
	if !t.link {
		mode := st.Mode & 0o7777
		if t.fd >= 0 {
			rec("chmod", unix.Fchmod(t.fd, mode))
		} else {
			rec("chmod", chmodAt(t.dirfd, t.name, mode))
		}
		if !w.opt.NoACLs {
			for _, a := range f.ACLs {
				rec("acl", w.setACL(t, f, a, isDir))
			}
		}
	}
	ts := [2]unix.Timespec{{Sec: st.Atime}, {Sec: st.Mtime}}
	if t.fd >= 0 {
		rec("utimes", futimens(t.fd, &ts))
	} else {
		rec("utimes", unix.UtimesNanoAt(t.dirfd, t.name, ts[:], unix.AT_SYMLINK_NOFOLLOW))
	}
	return first
}

func (w *Writer) setACL(t target, f *bacularec.File, a bacularec.ACL, isDir bool) error {
	var name string
	switch a.Stream {
	case bacularec.StreamACLLinuxAccess:
		name = xattrACLAccess
	case bacularec.StreamACLLinuxDefault:
		if !isDir {
			w.warnf("extract: %s: default ACL on a non-directory ignored", quotePath(f.Path))
			return nil
		}
		name = xattrACLDefault
	default:
		w.warnf("extract: %s: ACL stream %d not supported", quotePath(f.Path), a.Stream)
		return nil
	}
	ents, err := parseACL(a.Text, w.lookupUser, w.lookupGroup)
	if err != nil || ents == nil || name == xattrACLAccess && aclTrivial(ents) {
		return err // the mode bits say it all
	}
	w.xbuf = appendACLXattr(w.xbuf[:0], ents)
	return w.setxattr(t, name, w.xbuf)
}

func (w *Writer) setxattr(t target, name string, value []byte) error {
	if t.fd >= 0 {
		return unix.Fsetxattr(t.fd, name, value, 0)
	}
	if !w.noSetxat {
		err := setxattrat(t.dirfd, t.name, unix.AT_SYMLINK_NOFOLLOW, name, value)
		if err != unix.ENOSYS {
			return err
		}
		w.noSetxat = true
	}
	// No setxattrat (Linux < 6.13): through an O_PATH fd's /proc entry,
	// which names exactly the inode opened without following anything.
	// Not for symbolic links, where the /proc link would be followed.
	return viaProc(t.dirfd, t.name, func(p string) error { return unix.Setxattr(p, name, value, 0) })
}

// chmodAt sets the mode of name in dirfd without following a symbolic
// link: fchmodat2 (Linux 6.6), else through the /proc entry of an O_PATH fd.
func chmodAt(dirfd int, name string, mode uint32) error {
	err := unix.Fchmodat(dirfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if err != unix.EOPNOTSUPP {
		return err
	}
	return viaProc(dirfd, name, func(p string) error { return unix.Chmod(p, mode) })
}

func viaProc(dirfd int, name string, fn func(string) error) error {
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unix.EOPNOTSUPP
	}
	return fn("/proc/self/fd/" + strconv.Itoa(fd))
}

// futimens sets the times of an open file: utimensat(fd, NULL, ts, 0).
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// xattrArgs is struct xattr_args of setxattrat(2).
type xattrArgs struct {
	value uint64
	size  uint32
	flags uint32
}

// setxattrat is setxattrat(2) (Linux 6.13). value must be heap memory
// (held by a heap object), as its address travels inside a struct.
func setxattrat(dirfd int, path string, atFlags int, name string, value []byte) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	n, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	var args xattrArgs
	if len(value) > 0 {
		args.value = uint64(uintptr(unsafe.Pointer(&value[0])))
		args.size = uint32(len(value))
	}
	_, _, e := unix.Syscall6(unix.SYS_SETXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(atFlags),
		uintptr(unsafe.Pointer(n)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
	runtime.KeepAlive(value)
	if e != 0 {
		return e
	}
	return nil
}
