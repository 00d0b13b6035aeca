//go:build linux

package extract

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/openbrc/brc/bacularec"
)

// pendingFile is a finished regular file still under its temporary name.
type pendingFile struct {
	f   *bacularec.File
	rel string
	tmp string
}

// create makes an entry with mk, replacing whatever is at name. With
// Options.Atomic, mk makes it under a temporary name that is then renamed
// over name, so that the path never goes missing or shows a half-made
// entry.
func (w *Writer) create(pfd int, name, rel string, mk func(name string) error) error {
	if !w.opt.Atomic {
		return w.replace(pfd, name, rel, func() error { return mk(name) })
	}
	tmp, err := w.mkTemp(mk)
	if err != nil {
		return err
	}
	if err := w.rename(pfd, tmp, name, rel); err != nil {
		unix.Unlinkat(pfd, tmp, 0)
		return err
	}
	return nil
}

// mkTemp runs mk with fresh temporary names until one is free.
func (w *Writer) mkTemp(mk func(name string) error) (string, error) {
	for {
		w.tmpN++
		tmp := TempPrefix + w.tmpSeed + "." + strconv.FormatUint(w.tmpN, 36)
		if err := mk(tmp); err != unix.EEXIST {
			return tmp, err
		}
	}
}

// rename renames tmp over name in pfd. A directory in the way is removed
// first: an empty one always, a non-empty one only with Options.Deletions
// (see replace).
func (w *Writer) rename(pfd int, tmp, name, rel string) error {
	err := unix.Renameat(pfd, tmp, pfd, name)
	if err != unix.EISDIR && err != unix.ENOTEMPTY && err != unix.EEXIST {
		return err
	}
	if err := w.removeEntry(pfd, name, rel); err != nil {
		if !w.opt.Deletions || !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
			return err
		}
		if err := w.removeTree(pfd, name); err != nil {
			return err
		}
		w.evict(rel)
	}
	return unix.Renameat(pfd, tmp, pfd, name)
}

// Commit puts the regular files finished since the last Commit in place
// (Options.Atomic; without it there is nothing to do). With Options.Sync
// the file system is flushed first, so after a crash no file can be found
// under its name without all of its content. Files that cannot be renamed
// into place are removed and returned as joined *PathErrors.
//
// Batching the flush is what makes atomic replication cheap: one syncfs
// for many files costs about what writing them back costs anyway, where an
// fsync per file waits for a journal commit each time.
func (w *Writer) Commit() error {
	w.commit()
	return w.takeCommitErrs()
}

// StartCommit is Commit without the wait: with Options.Sync the file
// system is flushed on another goroutine while the Writer goes on writing
// (and the disk writes back what it was given meanwhile), and the files
// are renamed into place by the first Reap, StartCommit or Commit after
// the flush. One flush runs at a time: while it does, the files finished
// meanwhile wait for the next. It returns the errors of the files put in
// place by this call.
func (w *Writer) StartCommit() error {
	w.reap(false)
	if w.flushing == nil && len(w.pending) > 0 {
		if !w.opt.Sync {
			w.commit()
		} else {
			b := &flushBatch{files: w.pending, idx: w.pendingIdx, done: make(chan error, 1)}
			w.pending, w.pendingIdx = nil, nil
			w.flushing = b
			go func() { b.done <- w.syncfs() }()
		}
	}
	return w.takeCommitErrs()
}

// Reap renames into place the files of the flush StartCommit started, if
// it is over, and returns their errors. It never waits.
func (w *Writer) Reap() error {
	w.reap(false)
	return w.takeCommitErrs()
}

// Flushing reports whether a flush started by StartCommit is still to be
// reaped.
func (w *Writer) Flushing() bool { return w.flushing != nil }

func (w *Writer) takeCommitErrs() error {
	errs := w.commitErrs
	w.commitErrs = nil
	return joinErrs(errs)
}

// flushBatch is a batch of finished files whose flush runs in the
// background (StartCommit).
type flushBatch struct {
	files []pendingFile
	idx   map[string]int // rel -> index in files
	done  chan error     // the syncfs's result
}

// reap puts the batch being flushed in place once its flush is over,
// waiting for it if wait is set.
func (w *Writer) reap(wait bool) {
	b := w.flushing
	if b == nil {
		return
	}
	var err error
	if wait {
		err = <-b.done
	} else {
		select {
		case err = <-b.done:
		default:
			return
		}
	}
	w.flushing = nil
	w.commitErrs = append(w.commitErrs, w.install(b.files, err)...)
}

// flushUnder commits the pending files if one of them is rel or below it:
// rel is about to be removed or replaced, and the files must go in first,
// as they would have without Options.Atomic.
func (w *Writer) flushUnder(rel string) {
	under := func(files []pendingFile) bool {
		for _, p := range files {
			if rel == "" || p.rel == rel || strings.HasPrefix(p.rel, rel) && p.rel[len(rel)] == '/' {
				return true
			}
		}
		return false
	}
	if under(w.pending) || w.flushing != nil && under(w.flushing.files) {
		w.commit()
	}
}

func (w *Writer) commit() {
	w.reap(true)
	if len(w.pending) == 0 {
		return
	}
	// Taken out first: putting one in place may remove a directory, and
	// removeEntry commits what is pending below it.
	pending := w.pending
	w.pending = nil
	clear(w.pendingIdx)
	var syncErr error
	if w.opt.Sync {
		syncErr = w.syncfs()
	}
	w.commitErrs = append(w.commitErrs, w.install(pending, syncErr)...)
	clear(pending)
	if w.pending == nil {
		w.pending = pending[:0]
	}
}

// install renames flushed files into place; after a failed flush
// (syncErr), removes them instead. It returns the errors of the files not
// put in place.
func (w *Writer) install(files []pendingFile, syncErr error) []error {
	var errs []error
	for _, p := range files {
		w.touch(parentRel(p.rel))
		err := syncErr
		if err == nil {
			err = w.at(p.rel, false, func(pfd int, name string) error { return w.rename(pfd, p.tmp, name, p.rel) })
		}
		if err != nil {
			w.at(p.rel, false, func(pfd int, _ string) error { return unix.Unlinkat(pfd, p.tmp, 0) })
			w.stats.Files--
			errs = append(errs, w.fail(p.f, "rename", err))
			continue
		}
		if w.opt.Placed != nil {
			w.placed(p.f, p.rel)
		}
	}
	return errs
}

// pendingTemp returns the temporary name of rel if it waits for Commit.
func (w *Writer) pendingTemp(rel string) (string, bool) {
	if i, ok := w.pendingIdx[rel]; ok {
		return w.pending[i].tmp, true
	}
	if b := w.flushing; b != nil {
		if i, ok := b.idx[rel]; ok {
			return b.files[i].tmp, true
		}
	}
	return "", false
}

// Pending returns how many finished files are not in place yet.
func (w *Writer) Pending() int {
	n := len(w.pending)
	if w.flushing != nil {
		n += len(w.flushing.files)
	}
	return n
}

func (w *Writer) syncfs() error {
	fd, err := unix.Openat(w.rootFD, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = unix.Syncfs(fd)
		unix.Close(fd)
	}
	if err != nil {
		return opErr("syncfs", err)
	}
	return nil
}

func (w *Writer) placed(f *bacularec.File, rel string) {
	if info, err := w.statRel(rel); err == nil {
		w.opt.Placed(f, info)
	}
}

// Info is what the Writer tells of a file under the root: enough to notice
// that it changed (the state index of a replication target keeps it).
type Info struct {
	Mode  uint32 // st_mode
	UID   uint32
	GID   uint32
	Rdev  uint64
	Size  int64
	Dev   uint64
	Ino   uint64
	Mtime int64 // nanoseconds
	Ctime int64 // nanoseconds
}

// Stat returns what is at the backed-up path p (after StripPrefix),
// without following a symbolic link, or an error (ENOENT when nothing).
func (w *Writer) Stat(p string) (Info, error) {
	rel, err := w.rel(p)
	if err != nil {
		return Info{}, err
	}
	return w.statRel(rel)
}

func (w *Writer) statRel(rel string) (Info, error) {
	var st unix.Stat_t
	var err error
	if rel == "" {
		err = unix.Fstat(w.rootFD, &st)
	} else {
		err = w.at(rel, false, func(pfd int, name string) error {
			return unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		})
	}
	if err != nil {
		return Info{}, err
	}
	return Info{Mode: st.Mode, UID: st.Uid, GID: st.Gid, Rdev: st.Rdev, Size: st.Size, Dev: st.Dev, Ino: st.Ino,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}, nil
}

// Open opens the regular file at the backed-up path p for reading, never
// following a symbolic link.
func (w *Writer) Open(p string) (*os.File, error) {
	rel, err := w.rel(p)
	if err == nil && rel == "" {
		err = errRootPath
	}
	if err != nil {
		return nil, err
	}
	fd := -1
	err = w.at(rel, false, func(pfd int, name string) (err error) {
		// Reading back must not change the atime restored from the backup.
		flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
		fd, err = unix.Openat(pfd, name, flags|unix.O_NOATIME, 0)
		if err == unix.EPERM { // O_NOATIME needs ownership or CAP_FOWNER
			fd, err = unix.Openat(pfd, name, flags, 0)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		if err == nil {
			err = fmt.Errorf("%s: not a regular file", quotePath(p))
		}
		return nil, err
	}
	return os.NewFile(uintptr(fd), rel), nil
}

// CopyFrom writes the first n bytes of src into f, which KindFile started
// and no KindData followed yet: the unchanged start of a file that is
// being replaced. The copy is made by the kernel (copy_file_range), and
// shares blocks where the file system can (reflinks).
func (w *Writer) CopyFrom(f *bacularec.File, src *os.File, n int64) error {
	wf := w.files[f]
	if wf == nil {
		return &PathError{Op: "copy", Path: f.Path, Err: errors.New("file not open")}
	}
	var off, dst int64
	for off < n {
		m, err := unix.CopyFileRange(int(src.Fd()), &off, wf.fd, &dst, int(min(n-off, 1<<30)), 0)
		if err == unix.EINTR {
			continue
		}
		if err == nil && m == 0 {
			err = fmt.Errorf("%w: source shorter than %d bytes", unix.EIO, n)
		}
		if err != nil {
			w.discard(wf)
			w.forget(f)
			return w.fail(f, "copy", err)
		}
	}
	wf.end, wf.phys = n, n
	return nil
}

// SetMeta applies f's owner, mode, ACLs, xattrs and times to the regular
// file already at f's path, whose content is known to be right.
func (w *Writer) SetMeta(f *bacularec.File) error {
	rel, err := w.rel(f.Path)
	if err == nil && rel == "" {
		err = errRootPath
	}
	if err != nil {
		return w.fail(f, "path", err)
	}
	fd := -1
	err = w.at(rel, false, func(pfd int, name string) (err error) {
		fd, err = unix.Openat(pfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		return err
	})
	if err == nil {
		w.dirty = true
		err = w.meta(target{fd: fd}, f, false)
		unix.Close(fd)
	}
	if err != nil {
		return w.fail(f, "extract", err)
	}
	w.stats.Files++
	if w.opt.Placed != nil {
		w.placed(f, rel)
	}
	return nil
}

// Abort drops f, started by KindFile: what was written of it is removed
// in atomic mode (closed and left as is otherwise), and its remaining
// items are ignored.
func (w *Writer) Abort(f *bacularec.File) {
	if wf := w.files[f]; wf != nil {
		w.discard(wf)
		w.forget(f)
	}
}

// Staged is a file held under a temporary name (Options.Hold): Rel is its
// final path under the root, Tmp its temporary name in the same
// directory.
type Staged struct {
	Path string // the backed-up path
	Rel  string
	Tmp  string
}

// Held returns the files waiting for Switch.
func (w *Writer) Held() []Staged {
	out := make([]Staged, len(w.held))
	for i, h := range w.held {
		out[i] = Staged{Path: h.f.Path, Rel: h.rel, Tmp: h.tmp}
	}
	return out
}

// Switch flushes the file system (Options.Sync) and renames every held
// file into place, one after the other. Files that cannot be put in place
// are removed and returned as joined *PathErrors.
func (w *Writer) Switch() error {
	held := w.held
	w.held = nil
	if len(held) == 0 {
		return nil
	}
	var syncErr error
	if w.opt.Sync {
		syncErr = w.syncfs()
	}
	return joinErrs(w.install(held, syncErr))
}

// DropHeld removes the held files: their group is not switched.
func (w *Writer) DropHeld() {
	for _, h := range w.held {
		w.at(h.rel, false, func(pfd int, _ string) error { return unix.Unlinkat(pfd, h.tmp, 0) })
	}
	w.held = nil
}

// Install renames the temporary name tmp, in the directory of rel, over
// rel: how a switch interrupted by a crash is completed from its journal.
// A missing tmp is not an error (that rename was done).
func (w *Writer) Install(rel, tmp string) error {
	rel, err := cleanRel(rel)
	if err == nil && rel == "" {
		err = errRootPath
	}
	if err != nil || !strings.HasPrefix(tmp, TempPrefix) || strings.Contains(tmp, "/") {
		return fmt.Errorf("extract: install %s: %w", quotePath(rel), cmpErr(err, ErrUnsafePath))
	}
	err = w.at(rel, false, func(pfd int, name string) error { return w.rename(pfd, tmp, name, rel) })
	if err == unix.ENOENT {
		return nil
	}
	return err
}

func cmpErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// Sync flushes the file system holding the root (syncfs).
func (w *Writer) Sync() error { return w.syncfs() }

// Readlink returns the target of the symbolic link at the backed-up path
// p, without following anything.
func (w *Writer) Readlink(p string) (string, error) {
	rel, err := w.rel(p)
	if err == nil && rel == "" {
		err = errRootPath
	}
	if err != nil {
		return "", err
	}
	var target string
	err = w.at(rel, false, func(pfd int, name string) error {
		buf := make([]byte, 256)
		for {
			n, err := unix.Readlinkat(pfd, name, buf)
			if err != nil {
				return err
			}
			if n < len(buf) {
				target = string(buf[:n])
				return nil
			}
			buf = make([]byte, 2*len(buf))
		}
	})
	return target, err
}

// parentRel is the directory holding rel ("" for the root).
func parentRel(rel string) string {
	dir, _ := splitRel(rel)
	return dir
}

// touch records the times of directory rel before the Writer first
// changes its entries (Options.KeepDirTimes), so that Close can put them
// back when the job has no record of that directory: a replica's
// directories keep the times of the backup, not of the replication.
func (w *Writer) touch(rel string) {
	w.dirty = true
	if !w.opt.KeepDirTimes {
		return
	}
	if _, ok := w.touched[rel]; ok {
		return
	}
	if w.touched == nil {
		w.touched = map[string]*dirTimes{}
	}
	w.touched[rel] = nil // missing or unreadable: nothing to restore
	fd, err := w.openDir(rel, false)
	if err != nil {
		return
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil {
		w.touched[rel] = &dirTimes{ino: st.Ino, ts: [2]unix.Timespec{st.Atim, st.Mtim}}
	}
}

// dirTimes are a directory's times before the Writer changed it.
type dirTimes struct {
	ino uint64 // the same directory still, not one replaced meanwhile
	ts  [2]unix.Timespec
}

// restoreDirTimes puts back the times of the directories changed but not
// named by a record (and not made by the Writer).
func (w *Writer) restoreDirTimes() {
	made := map[string]bool{}
	for _, rel := range w.created {
		made[rel] = true
	}
	for rel, ts := range w.touched {
		if ts == nil || made[rel] {
			continue
		}
		if _, named := w.deferIdx[rel]; named {
			continue
		}
		var err error
		if rel == "" {
			var fd int
			fd, err = unix.Openat(w.rootFD, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err == nil {
				err = futimens(fd, &ts.ts)
				unix.Close(fd)
			}
		} else {
			err = w.at(rel, false, func(pfd int, name string) error {
				var st unix.Stat_t
				if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					return err
				}
				if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Ino != ts.ino {
					return nil // replaced since: not that directory's times
				}
				return unix.UtimesNanoAt(pfd, name, ts.ts[:], unix.AT_SYMLINK_NOFOLLOW)
			})
		}
		if err != nil && err != unix.ENOENT && err != unix.ENOTDIR {
			w.warnf("extract: %s: directory times not restored: %v", quotePath(rel), err)
		}
	}
	w.touched = nil
}
