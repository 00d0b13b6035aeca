//go:build linux

package extract

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/openbrc/brc/bacularec"
)

// Writer materialises bacularec Items under a root directory. Create one
// with New, feed it every Item in order with Apply, then call Close. A
// Writer is not safe for concurrent use.
type Writer struct {
	opt    Options
	rootFD int // O_PATH directory
	owner  bool

	noOpenat2  bool // openat2 unavailable: always walk component by component
	noSetxat   bool // setxattrat unavailable
	noZeroSkip bool // write all-zero blocks too (benchmarks)

	// Directory cache: relative path -> O_PATH fd, every one reached
	// without following a symbolic link. fds handed out stay valid until
	// the next Apply (the cache is only flushed between items) or until
	// the directory is removed by the Writer (evict).
	dirs      map[string]int
	lastDir   string
	lastDirFD int

	files map[*bacularec.File]*wfile // regular files being written
	lastF *bacularec.File
	lastW *wfile

	deferred []dirMeta
	deferIdx map[string]int
	created  []string // directories made for missing parents

	pending    []pendingFile // finished files waiting for Commit (Options.Atomic)
	pendingIdx map[string]int
	flushing   *flushBatch          // files whose flush runs in the background (StartCommit)
	dirty      bool                 // something was changed (Sync: flush at Close)
	touched    map[string]*dirTimes // Options.KeepDirTimes: times before the first change
	held       []pendingFile        // finished files waiting for Switch (Options.Hold)
	commitErrs []error
	tmpSeed    string
	tmpN       uint64

	ids   map[string]idResult
	xbuf  []byte // ACL value scratch; on the heap (see setxattrat)
	stats Stats

	closed bool
}

// wfile is a regular file being written.
type wfile struct {
	fd   int
	rel  string
	tmp  string // temporary name in the parent directory (Options.Atomic)
	end  int64  // end of the content received (logical size so far)
	phys int64  // end of what was written to the file (its current size)
}

type dirMeta struct {
	rel string
	f   *bacularec.File
}

type idResult struct {
	id  uint32
	err error
}

const (
	dirCacheMax  = 256
	resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS
	holeBlock    = 4096
)

var zeroBlock [holeBlock]byte

// New returns a Writer that restores files under root, creating root (0700)
// if it does not exist. A backed-up path /a/b is restored as root/a/b.
// Ownership is restored only when running as root (see Options.NoOwner).
func New(root string, opt Options) (*Writer, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	seed := make([]byte, 6)
	rand.Read(seed)
	w := &Writer{
		opt:       opt,
		tmpSeed:   hex.EncodeToString(seed),
		rootFD:    fd,
		owner:     !opt.NoOwner && os.Geteuid() == 0,
		dirs:      make(map[string]int),
		lastDirFD: -1,
		files:     make(map[*bacularec.File]*wfile),
		deferIdx:  make(map[string]int),
	}
	// openat2 may be missing (Linux < 5.6) or filtered by seccomp: the
	// component-by-component walk is as safe, only slower.
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: resolveFlags}
	if pfd, err := unix.Openat2(fd, ".", &how); err != nil {
		w.noOpenat2 = true
	} else {
		unix.Close(pfd)
	}
	return w, nil
}

// Stats returns the counters so far.
func (w *Writer) Stats() Stats { return w.stats }

// Apply restores what it.File says, as the Item kinds arrive:
//
//   - KindFile creates a regular file (TypeReg, TypeRegEmpty, and
//     TypeFIFO/TypeRaw, whose content was read as data) and any missing
//     parent directories (mode 0700 until their own record is applied,
//     or 0777 minus umask at Close if none comes, like bextract).
//   - KindData writes content at its offset; gaps and all-zero 4 KiB
//     blocks are left as holes.
//   - KindFileEnd finishes the file: size, owner, xattrs, mode, ACLs and
//     times. Symbolic links, hard links, FIFOs, device nodes, directories
//     and deletions are all made here. Directory metadata is deferred to
//     Close.
//
// Anything already at a path is replaced, except a non-empty directory.
// Other kinds are ignored.
//
// A returned error concerns one file (a *PathError naming it, with
// sentinels such as ErrUnsafePath, ErrLinkTarget, ErrNotDecoded inside):
// the caller should count it and go on; the rest of that file's items are
// then ignored. Only errors for which IsFatal is true mean stopping.
func (w *Writer) Apply(it *bacularec.Item) error {
	if w.closed {
		return ErrClosed
	}
	f := it.File
	if f == nil {
		return nil
	}
	switch it.Kind {
	case bacularec.KindData:
		wf := w.lastW
		if f != w.lastF {
			if wf = w.files[f]; wf == nil {
				return nil // skipped or failed
			}
			w.lastF, w.lastW = f, wf
		}
		if err := w.write(wf, it.Offset, it.Data); err != nil {
			w.discard(wf)
			w.forget(f)
			return w.fail(f, "write", err)
		}
		return nil
	case bacularec.KindFile:
		if len(w.dirs) > dirCacheMax {
			w.flushDirs()
		}
		return w.begin(f)
	case bacularec.KindFileEnd:
		if len(w.dirs) > dirCacheMax {
			w.flushDirs()
		}
		return w.end(f)
	}
	return nil
}

func (w *Writer) fail(f *bacularec.File, op string, err error) error {
	w.stats.Errors++
	var oe *opError
	if errors.As(err, &oe) {
		op, err = oe.op, oe.err
	}
	return &PathError{Op: op, Path: f.Path, Err: err}
}

func (w *Writer) warnf(format string, args ...any) {
	w.stats.Warnings++
	if w.opt.Logf != nil {
		w.opt.Logf(format, args...)
	}
}

func (w *Writer) skip(f *bacularec.File, why string) {
	w.stats.Skipped++
	if w.opt.Logf != nil {
		w.opt.Logf("extract: skipping %s: %s", quotePath(f.Path), why)
	}
}

func (w *Writer) forget(f *bacularec.File) {
	delete(w.files, f)
	if w.lastF == f {
		w.lastF, w.lastW = nil, nil
	}
}

func (w *Writer) rel(p string) (string, error) {
	return cleanRel(StripPrefix(p, w.opt.StripPrefix))
}

// begin handles KindFile: regular files are created now, everything else
// waits for KindFileEnd.
func (w *Writer) begin(f *bacularec.File) error {
	if !isDataType(f.Type) {
		return nil
	}
	if old := w.files[f]; old != nil { // KindFile twice: start over
		w.discard(old)
		w.forget(f)
	}
	if w.opt.Filter != nil && !w.opt.Filter(f) {
		w.stats.Skipped++
		return nil
	}
	rel, err := w.rel(f.Path)
	if err == nil && rel == "" {
		err = errRootPath
	}
	if err != nil {
		return w.fail(f, "create", err)
	}
	fd, tmp := -1, ""
	err = w.at(rel, true, func(pfd int, name string) (err error) {
		mk := func(name string) (err error) {
			fd, err = unix.Openat(pfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
			return err
		}
		if w.opt.Atomic {
			// Put in place by Commit.
			tmp, err = w.mkTemp(mk)
			return err
		}
		return w.replace(pfd, name, rel, func() error { return mk(name) })
	})
	if err != nil {
		return w.fail(f, "create", err)
	}
	wf := &wfile{fd: fd, rel: rel, tmp: tmp}
	w.files[f] = wf
	w.lastF, w.lastW = f, wf
	return nil
}

// write puts p at off. While the file grows sequentially, 4 KiB-aligned
// all-zero blocks are skipped: they stay holes, and end-phys is fixed by
// ftruncate when the file is finished.
func (w *Writer) write(wf *wfile, off int64, p []byte) error {
	n := int64(len(p))
	w.stats.Bytes += n
	if off < wf.end || w.noZeroSkip || len(p) < holeBlock {
		if err := pwriteAll(wf.fd, p, off); err != nil {
			return err
		}
		wf.end = max(wf.end, off+n)
		wf.phys = max(wf.phys, off+n)
		return nil
	}
	run := 0 // start of the data not yet written
	for j := int((holeBlock - off%holeBlock) % holeBlock); j+holeBlock <= len(p); j += holeBlock {
		if !bytes.Equal(p[j:j+holeBlock], zeroBlock[:]) {
			continue
		}
		if j > run {
			if err := pwriteAll(wf.fd, p[run:j], off+int64(run)); err != nil {
				return err
			}
			wf.phys = off + int64(j)
		}
		run = j + holeBlock
		w.stats.HoleBytes += holeBlock
	}
	if run < len(p) {
		if err := pwriteAll(wf.fd, p[run:], off+int64(run)); err != nil {
			return err
		}
		wf.phys = off + n
	}
	wf.end = off + n
	return nil
}

func pwriteAll(fd int, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := unix.Pwrite(fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return unix.EIO
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// end handles KindFileEnd.
func (w *Writer) end(f *bacularec.File) error {
	if wf := w.files[f]; wf != nil {
		w.forget(f)
		return w.finishFile(f, wf)
	}
	if isDataType(f.Type) {
		return nil // skipped or failed at KindFile
	}
	switch f.Type {
	case bacularec.TypeDirEnd, bacularec.TypeReparse, bacularec.TypeJunction,
		bacularec.TypeSymlink, bacularec.TypeLinkSaved, bacularec.TypeSpecial, bacularec.TypeDeleted:
	default:
		w.skip(f, "file type "+f.Type.String()+" is not restored")
		return nil
	}
	if w.opt.Filter != nil && !w.opt.Filter(f) {
		w.stats.Skipped++
		return nil
	}
	if f.Type == bacularec.TypeDeleted && !w.opt.Deletions {
		w.stats.Skipped++
		return nil
	}
	rel, err := w.rel(f.Path)
	if err == nil && rel == "" && !f.Type.IsDir() {
		err = errRootPath
	}
	if err != nil {
		return w.fail(f, "path", err)
	}
	switch f.Type {
	case bacularec.TypeSymlink:
		err = w.symlink(f, rel)
	case bacularec.TypeLinkSaved:
		err = w.hardlink(f, rel)
	case bacularec.TypeSpecial:
		err = w.special(f, rel)
	case bacularec.TypeDeleted:
		err = w.delete(f, rel)
	default:
		err = w.dir(f, rel)
	}
	if err != nil {
		return w.fail(f, "extract", err)
	}
	return nil
}

func (w *Writer) finishFile(f *bacularec.File, wf *wfile) error {
	fd := wf.fd
	if f.Incomplete {
		w.discard(wf)
		w.stats.Incomplete++
		return w.fail(f, "extract", ErrIncomplete)
	}
	undecoded := len(f.NotDecoded) > 0
	size := wf.end
	if !undecoded && f.Stat.Size > size {
		size = f.Stat.Size // trailing hole
	}
	var err error
	if size > wf.phys {
		err = opErr("truncate", unix.Ftruncate(fd, size))
	}
	if err == nil {
		err = w.meta(target{fd: fd}, f, false)
	}
	if e := unix.Close(fd); e != nil && err == nil {
		err = opErr("close", e)
	}
	wf.fd = -1
	w.stats.Files++
	if undecoded {
		w.stats.NotDecoded++
		if err == nil {
			err = opErr("extract", ErrNotDecoded)
		}
	}
	if err != nil {
		w.discard(wf)
		return w.fail(f, "extract", err)
	}
	if wf.tmp != "" && w.opt.Hold != nil && w.opt.Hold(f) {
		w.held = append(w.held, pendingFile{f: f, rel: wf.rel, tmp: wf.tmp})
	} else if wf.tmp != "" {
		if w.pendingIdx == nil {
			w.pendingIdx = make(map[string]int)
		}
		w.pendingIdx[wf.rel] = len(w.pending)
		w.pending = append(w.pending, pendingFile{f: f, rel: wf.rel, tmp: wf.tmp})
	} else if w.opt.Placed != nil {
		w.placed(f, wf.rel)
	}
	return nil
}

// discard closes a file being written and, in atomic mode, removes its
// temporary name: a failed file leaves nothing behind.
func (w *Writer) discard(wf *wfile) {
	if wf.fd >= 0 {
		unix.Close(wf.fd)
		wf.fd = -1
	}
	if wf.tmp != "" {
		w.at(wf.rel, false, func(pfd int, _ string) error { return unix.Unlinkat(pfd, wf.tmp, 0) })
		wf.tmp = ""
	}
}

func (w *Writer) dir(f *bacularec.File, rel string) error {
	if _, known := w.dirs[rel]; rel != "" && !known {
		err := w.at(rel, true, func(pfd int, name string) error {
			err := unix.Mkdirat(pfd, name, 0o700)
			if err != unix.EEXIST {
				return err
			}
			var st unix.Stat_t
			if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				return nil
			}
			return w.replace(pfd, name, rel, func() error {
				err := unix.Mkdirat(pfd, name, 0o700)
				if err == unix.EEXIST && unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil &&
					st.Mode&unix.S_IFMT == unix.S_IFDIR {
					return nil // another Writer of the same run made it meanwhile
				}
				return err
			})
		})
		if err != nil {
			return opErr("mkdir", err)
		}
	}
	w.stats.Dirs++
	if i, ok := w.deferIdx[rel]; ok {
		w.deferred[i].f = f
	} else {
		w.deferIdx[rel] = len(w.deferred)
		w.deferred = append(w.deferred, dirMeta{rel, f})
	}
	return nil
}

func (w *Writer) symlink(f *bacularec.File, rel string) error {
	err := w.at(rel, true, func(pfd int, name string) error {
		err := w.create(pfd, name, rel, func(name string) error { return unix.Symlinkat(f.Link, pfd, name) })
		if err != nil {
			return opErr("symlink", err)
		}
		return w.meta(target{fd: -1, dirfd: pfd, name: name, link: true}, f, false)
	})
	if err == nil {
		w.stats.Symlinks++
	}
	return err
}

func (w *Writer) hardlink(f *bacularec.File, rel string) error {
	src, err := w.rel(f.Link)
	if err == nil && src == "" {
		err = errRootPath
	}
	if err != nil {
		return opErr("link", fmt.Errorf("target %s: %w", quotePath(f.Link), err))
	}
	if src == rel {
		w.stats.HardLinks++
		return nil
	}
	srcDir, srcName := splitRel(src)
	if tmp, ok := w.pendingTemp(src); ok {
		srcName = tmp // its first name is not in place yet
	}
	err = w.at(rel, true, func(pfd int, name string) error {
		spfd, err := w.openDir(srcDir, false)
		if err == nil {
			err = w.create(pfd, name, rel, func(name string) error { return unix.Linkat(spfd, srcName, pfd, name, 0) })
		}
		if err == unix.ENOENT || err == unix.ENOTDIR {
			err = fmt.Errorf("%w: %s", ErrLinkTarget, quotePath(f.Link))
		}
		return opErr("link", err)
	})
	if err == nil {
		w.stats.HardLinks++
	}
	return err
}

func (w *Writer) special(f *bacularec.File, rel string) error {
	typ := f.Stat.Mode & unix.S_IFMT
	switch typ {
	case unix.S_IFIFO:
	case unix.S_IFCHR, unix.S_IFBLK:
		if w.opt.NoDevices {
			w.skip(f, "device node (NoDevices)")
			return nil
		}
	case unix.S_IFSOCK:
		w.skip(f, "socket")
		return nil
	default:
		w.skip(f, fmt.Sprintf("special file of mode %#o", f.Stat.Mode))
		return nil
	}
	skipped := false
	err := w.at(rel, true, func(pfd int, name string) error {
		if typ == unix.S_IFIFO {
			if err := w.create(pfd, name, rel, func(name string) error { return unix.Mkfifoat(pfd, name, 0o600) }); err != nil {
				return opErr("mkfifo", err)
			}
			// Opening a FIFO read-only and non-blocking neither blocks nor
			// disturbs anything; it gives an fd for the metadata calls.
			fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return opErr("open", err)
			}
			defer unix.Close(fd)
			return w.meta(target{fd: fd}, f, false)
		}
		major, minor := unix.Major(f.Stat.Rdev), unix.Minor(f.Stat.Rdev)
		if major >= 1<<12 || minor >= 1<<20 {
			return opErr("mknod", fmt.Errorf("device %d,%d does not fit: %w", major, minor, unix.EOVERFLOW))
		}
		dev := int(unix.Mkdev(major, minor))
		err := w.create(pfd, name, rel, func(name string) error { return unix.Mknodat(pfd, name, typ|0o600, dev) })
		if err == unix.EPERM {
			skipped = true
			return nil
		}
		if err != nil {
			return opErr("mknod", err)
		}
		// Never open a device node (it may be a tape): metadata by name.
		return w.meta(target{fd: -1, dirfd: pfd, name: name}, f, false)
	})
	if skipped {
		w.skip(f, "device node: mknod not permitted")
		return nil
	}
	if err == nil {
		w.stats.Specials++
	}
	return err
}

func (w *Writer) delete(f *bacularec.File, rel string) error {
	// Bacula marks a deleted directory with a trailing "/". It writes the
	// deletion records after the job's files, so when the path now holds
	// something of the other type, the job itself put it there: keep it.
	wantDir := strings.HasSuffix(f.Path, "/")
	kept := false
	w.touch(parentRel(rel))
	err := w.at(rel, false, func(pfd int, name string) error {
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR; isDir != wantDir {
			kept = true
			return nil
		}
		if !wantDir {
			return unix.Unlinkat(pfd, name, 0)
		}
		w.flushUnder(rel)
		err := w.removeTree(pfd, name)
		w.evict(rel)
		return err
	})
	switch {
	case err == unix.ENOENT || err == unix.ENOTDIR || errors.Is(err, errSymlink) || kept:
		// Nothing (of that type) there. Below a symbolic link, which is
		// never followed, there is nothing of the backed-up tree: when a
		// directory became a link, Bacula's deletion records for its old
		// entries come like this.
		return nil
	case err != nil:
		return opErr("delete", err)
	}
	w.stats.Deleted++
	return nil
}

// removeTree removes directory name in pfd and everything in it, never
// following a symbolic link.
func (w *Writer) removeTree(pfd int, name string) error {
	var buf []byte
	for tries := 0; ; tries++ {
		fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.EACCES && tries == 0 {
			// Our own directory without rwx for us: it is going away.
			if chmodAt(pfd, name, 0o700) == nil {
				continue
			}
		}
		if err == unix.ENOTDIR || err == unix.ELOOP {
			return unix.Unlinkat(pfd, name, 0)
		}
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&0o300 != 0o300 {
			unix.Fchmod(fd, st.Mode&0o7777|0o700)
		}
		if buf == nil {
			buf = make([]byte, 16<<10)
		}
		var names []string
		for {
			n, err2 := unix.Getdents(fd, buf)
			if err2 == unix.EINTR {
				continue
			}
			if err2 != nil {
				err = err2
			}
			if n <= 0 {
				break
			}
			_, _, names = unix.ParseDirent(buf[:n], -1, names)
		}
		for _, n := range names {
			e := unix.Unlinkat(fd, n, 0)
			if e == unix.EISDIR {
				e = w.removeTree(fd, n)
			}
			if e != nil && e != unix.ENOENT && err == nil {
				err = e
			}
		}
		unix.Close(fd)
		if err != nil {
			return err
		}
		err = unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR)
		if err != unix.ENOTEMPTY || tries >= 3 {
			return err
		}
	}
}

// Close closes files whose KindFileEnd never came (ErrIncomplete), then
// applies the deferred directory metadata, deepest directories first so
// that setting a directory's times or mode is the last thing done to it.
// With Options.Sync it then flushes the file system. Close returns the
// errors met (joined); Stats counts them. Calling Close again returns nil.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	var errs []error
	open := make([]*bacularec.File, 0, len(w.files))
	for f := range w.files {
		open = append(open, f)
	}
	slices.SortFunc(open, func(a, b *bacularec.File) int { return strings.Compare(a.Path, b.Path) })
	for _, f := range open {
		w.discard(w.files[f])
		w.stats.Incomplete++
		errs = append(errs, w.fail(f, "extract", ErrIncomplete))
	}
	w.files, w.lastF, w.lastW = nil, nil, nil
	if err := w.Commit(); err != nil {
		errs = append(errs, err)
	}
	w.DropHeld()

	// Directories made for missing parents whose own record never came
	// get the default mode, as bextract leaves them.
	mode := uint32(0o777) &^ umask()
	for i, rel := range w.created {
		if i%dirCacheMax == 0 && len(w.dirs) > dirCacheMax {
			w.flushDirs()
		}
		if _, ok := w.deferIdx[rel]; ok {
			continue
		}
		w.at(rel, false, func(pfd int, name string) error { return chmodAt(pfd, name, mode) })
	}
	w.created = nil

	depth := func(rel string) int {
		if rel == "" {
			return 0
		}
		return 1 + strings.Count(rel, "/")
	}
	slices.SortStableFunc(w.deferred, func(a, b dirMeta) int { return depth(b.rel) - depth(a.rel) })
	for i, d := range w.deferred {
		if i%dirCacheMax == 0 && len(w.dirs) > dirCacheMax {
			w.flushDirs()
		}
		if err := w.applyDir(d); err != nil {
			errs = append(errs, w.fail(d.f, "extract", err))
		}
	}
	w.restoreDirTimes()
	w.deferred, w.deferIdx = nil, nil

	if w.opt.Sync && w.dirty {
		fd, err := unix.Openat(w.rootFD, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Syncfs(fd)
			unix.Close(fd)
		}
		if err != nil {
			w.stats.Errors++
			errs = append(errs, fmt.Errorf("extract: syncfs: %w", err))
		}
	}
	w.flushDirs()
	unix.Close(w.rootFD)
	return joinErrs(errs)
}

func (w *Writer) applyDir(d dirMeta) error {
	w.dirty = true
	fd := -1
	var err error
	if d.rel == "" {
		fd, err = unix.Openat(w.rootFD, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	} else {
		err = w.at(d.rel, false, func(pfd int, name string) (err error) {
			fd, err = unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			return err
		})
	}
	switch {
	case err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP:
		return nil // deleted or replaced by a later record
	case err != nil:
		return opErr("open", err)
	}
	err = w.meta(target{fd: fd}, d.f, true)
	unix.Close(fd)
	return err
}

// at resolves the parent directory of rel (creating missing directories
// when create is set) and calls fn with its fd and the last component. fn
// must not follow a symbolic link in that last component. If fn fails with
// ENOENT because a cached parent was removed behind our back, it is
// resolved again once.
func (w *Writer) at(rel string, create bool, fn func(pfd int, name string) error) error {
	dir, name := splitRel(rel)
	if create {
		w.touch(dir)
	}
	for try := 0; ; try++ {
		pfd, err := w.openDir(dir, create)
		if err != nil {
			return err
		}
		err = fn(pfd, name)
		if err != unix.ENOENT || try > 0 {
			return err
		}
		var st unix.Stat_t
		if unix.Fstat(pfd, &st) != nil || st.Nlink != 0 {
			return err
		}
		if pfd == w.rootFD {
			return ErrRootGone
		}
		w.evict(dir)
	}
}

// replace runs mk, which creates an entry in pfd and fails with EEXIST
// when something is already there; it then removes that (a non-directory
// or an empty directory) and runs mk again.
//
// A non-empty directory is only removed with Options.Deletions: when a
// later job of a chain replaces a directory by a file, the directory is
// gone from the backed-up system, and its deletion record comes after.
func (w *Writer) replace(pfd int, name, rel string, mk func() error) error {
	err := mk()
	if err != unix.EEXIST {
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
	return mk()
}

func (w *Writer) removeEntry(pfd int, name, rel string) error {
	err := unix.Unlinkat(pfd, name, 0)
	if err == unix.EISDIR {
		w.flushUnder(rel)
		err = unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR)
		if err == nil {
			w.evict(rel)
		} else if err == unix.ENOTEMPTY || err == unix.EEXIST {
			return fmt.Errorf("non-empty directory in the way: %w", err)
		}
	}
	if err == unix.ENOENT {
		err = nil
	}
	return err
}

// openDir returns an O_PATH fd for the directory rel ("" is the root),
// reached without following any symbolic link (ErrUnsafePath otherwise).
// With create, missing directories are made (0700) and non-directories
// other than symbolic links in the way are replaced. The fd belongs to the
// cache: do not close it.
func (w *Writer) openDir(rel string, create bool) (int, error) {
	if rel == "" {
		return w.rootFD, nil
	}
	if w.lastDirFD >= 0 && rel == w.lastDir {
		return w.lastDirFD, nil
	}
	fd, ok := w.dirs[rel]
	if !ok {
		fd = -1
		if !w.noOpenat2 {
			how := unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: resolveFlags}
			var err error
			if fd, err = unix.Openat2(w.rootFD, rel, &how); err != nil {
				fd = -1
				if err == unix.ENOSYS {
					w.noOpenat2 = true
				}
			}
		}
		if fd >= 0 {
			w.dirs[rel] = fd
		} else {
			// Missing, in the way, a symbolic link, or no openat2: walk.
			var err error
			if fd, err = w.walk(rel, create); err != nil {
				return -1, err
			}
		}
	}
	w.lastDir, w.lastDirFD = rel, fd
	return fd, nil
}

// walk resolves rel one component at a time with O_NOFOLLOW, starting from
// the deepest cached ancestor, caching every directory on the way.
func (w *Writer) walk(rel string, create bool) (int, error) {
	cur, base := w.rootFD, 0
	for i := len(rel); ; {
		i = strings.LastIndexByte(rel[:i], '/')
		if i <= 0 {
			break
		}
		if fd, ok := w.dirs[rel[:i]]; ok {
			cur, base = fd, i+1
			break
		}
	}
	owned := false // cur is an fd of ours, not in the cache
	for base <= len(rel) {
		end := strings.IndexByte(rel[base:], '/')
		if end < 0 {
			end = len(rel)
		} else {
			end += base
		}
		fd, err := w.stepDir(cur, rel[base:end], rel[:end], create)
		if owned {
			unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		// Cache the directories on the way, within reason (very deep
		// paths), and always the last one: callers borrow it.
		owned = end < len(rel) && len(w.dirs) >= 4*dirCacheMax
		if !owned {
			w.dirs[rel[:end]] = fd
		}
		cur, base = fd, end+1
	}
	return cur, nil
}

func (w *Writer) stepDir(dirfd int, name, rel string, create bool) (int, error) {
	for tries := 0; ; tries++ {
		fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			return fd, nil
		}
		if tries >= 3 {
			return -1, err
		}
		switch err {
		case unix.ENOENT:
			if !create {
				return -1, err
			}
			w.touch(parentRel(rel))
			err = unix.Mkdirat(dirfd, name, 0o700)
			if err == nil {
				w.created = append(w.created, rel)
			}
			if err == unix.ENOENT && dirfd == w.rootFD {
				var st unix.Stat_t
				if unix.Fstat(dirfd, &st) == nil && st.Nlink == 0 {
					return -1, ErrRootGone
				}
			}
			if err != nil && err != unix.EEXIST {
				return -1, err
			}
		case unix.ENOTDIR, unix.ELOOP:
			var st unix.Stat_t
			if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return -1, err
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFLNK:
				if !create || w.opt.ReplaceSymlink == nil || !w.opt.ReplaceSymlink(rel) {
					return -1, errSymlink
				}
				// Unlinking never follows the link.
				if err := unix.Unlinkat(dirfd, name, 0); err != nil && err != unix.ENOENT {
					return -1, err
				}
			case unix.S_IFDIR:
				continue // raced; try again
			}
			if !create {
				return -1, unix.ENOTDIR
			}
			if err := w.removeEntry(dirfd, name, rel); err != nil {
				return -1, err
			}
		default:
			return -1, err
		}
	}
}

// evict drops rel and everything below it from the directory cache (after
// the Writer removed that directory). The parent's fd stays valid.
func (w *Writer) evict(rel string) {
	for k, fd := range w.dirs {
		if rel == "" || k == rel || strings.HasPrefix(k, rel) && k[len(rel)] == '/' {
			unix.Close(fd)
			delete(w.dirs, k)
		}
	}
	w.lastDir, w.lastDirFD = "", -1
}

func (w *Writer) flushDirs() {
	for _, fd := range w.dirs {
		unix.Close(fd)
	}
	clear(w.dirs)
	w.lastDir, w.lastDirFD = "", -1
}

func (w *Writer) lookupUser(name string) (uint32, error) {
	return w.lookupID("u:"+name, func() (string, error) {
		u, err := user.Lookup(name)
		if err != nil {
			return "", err
		}
		return u.Uid, nil
	})
}

func (w *Writer) lookupGroup(name string) (uint32, error) {
	return w.lookupID("g:"+name, func() (string, error) {
		g, err := user.LookupGroup(name)
		if err != nil {
			return "", err
		}
		return g.Gid, nil
	})
}

func (w *Writer) lookupID(key string, look func() (string, error)) (uint32, error) {
	if r, ok := w.ids[key]; ok {
		return r.id, r.err
	}
	if w.ids == nil {
		w.ids = make(map[string]idResult)
	}
	var r idResult
	s, err := look()
	if err == nil {
		var id uint64
		id, err = strconv.ParseUint(s, 10, 32)
		r.id = uint32(id)
	}
	r.err = err
	w.ids[key] = r
	return r.id, r.err
}

// umask returns the process umask without changing it (Linux 4.7+), or 022.
func umask() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return uint32(m) & 0o777
				}
			}
		}
	}
	return 0o022
}
