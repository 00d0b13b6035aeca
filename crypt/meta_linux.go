//go:build linux

package crypt

import (
	"io/fs"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func fileOwner(fi fs.FileInfo) (int, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, ErrUnsupported
	}
	return int(st.Uid), nil
}

// meta is what DecryptTree copies from a source entry.
type meta struct {
	mode         fs.FileMode
	uid, gid     int
	atime, mtime time.Time
	rdev         uint64
}

func metaOf(fi fs.FileInfo) meta {
	m := meta{mode: fi.Mode(), uid: -1, gid: -1, atime: fi.ModTime(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		m.uid, m.gid = int(st.Uid), int(st.Gid)
		m.atime = time.Unix(st.Atim.Unix())
		m.mtime = time.Unix(st.Mtim.Unix())
		m.rdev = st.Rdev
	}
	return m
}

// lchtimes sets the times of path without following a final symlink.
func lchtimes(path string, atime, mtime time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// mknod makes a FIFO or device node like the source one.
func mknod(path string, m meta) error {
	mode := uint32(m.mode.Perm())
	switch {
	case m.mode&fs.ModeNamedPipe != 0:
		mode |= unix.S_IFIFO
	case m.mode&fs.ModeCharDevice != 0:
		mode |= unix.S_IFCHR
	case m.mode&fs.ModeDevice != 0:
		mode |= unix.S_IFBLK
	default:
		return ErrUnsupported
	}
	return unix.Mknod(path, mode, int(m.rdev))
}

// syncDir makes the renames in a directory durable.
func syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fsync(fd)
}
