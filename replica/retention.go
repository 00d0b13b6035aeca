// # Retention
//
// With mode = retention (Retention), a target keeps, besides the current
// version of each file at its path, up to retention_versions previous
// versions of it. They live under the root's VersionsDir, in a directory
// named after the file's path under the root, one name per version:
//
//	ROOT/etc/hosts                                    the current version
//	ROOT/.brc-versions/etc/hosts/20261127T044837Z-job13
//	ROOT/.brc-versions/etc/hosts/20261127T044844Z-job14
//
// A version's name is <time>-job<JobId>, the time in UTC to the second
// (VersionName, ParseVersionName): the job with that JobId wrote that
// version to the target at that time, as the target's Index recorded it.
// When the Index knows nothing of the file (a second name of a hard link,
// a symbolic link, a file restored by hand or by RestoreVersion) the name
// carries the file's mtime and JobId 0; RestoreVersion names the file it
// replaces after the time of the restore, with JobId 0. A name already taken by another
// file gets ".2", ".3" ... appended. Versions sort by time, then JobId,
// then that number; beyond retention_versions, the oldest are removed.
// Directories under VersionsDir only hold versions: a version is a
// regular file or a symbolic link, never a directory.
//
// A version is a hard link to the file it was, never a copy: it costs no
// space until the file is replaced, and it is made before the Mirror
// replaces or removes the file, so that after a crash at any point the
// previous file is at its path, under its version name, or both. Versions
// made for files that turn out unchanged are removed when the job ends
// (after a crash, when the job is replayed). ListVersions lists the
// versions of a path, RestoreVersion brings one back; "replicad versions"
// and "replicad restore-version" are their command-line form.
package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/extract"
)

// RetentionOptions tune a Retention.
type RetentionOptions struct {
	// Logf receives warnings (a version that could not be pruned ...);
	// default the Mirror's.
	Logf func(format string, args ...any)
}

// Retention is a Target (mode = retention) that keeps, around a Mirror,
// up to a number of previous versions of each file: see the Retention
// section of the package documentation for where and under which names.
//
// Before a Put that replaces or removes a regular file or symbolic link
// (a new content, a TypeDeleted record, another type, or a directory made
// where the file was), the file is hard-linked under VersionsDir; a
// directory removed or replaced keeps every file in it this way, and so
// do the paths delete_removed removes after a Full. When the job ends,
// a version whose file is still at its path (the Mirror skipped it or
// changed its metadata only), or was rewritten with the same content (the
// Index's BLAKE3, or a comparison of the two), is removed: an unchanged
// file has no version. Then each path touched keeps its newest versions
// only. A version that cannot be kept (a mount point inside the root,
// too many links ...) fails its file: the file is left as it was, and the
// failure is a FileError, so that no version is lost silently.
//
// Nothing is done outside the root: paths are resolved without following
// a symbolic link, and paths with ".." are left to the Mirror, which
// refuses them.
//
// The Index must be the Mirror's (MirrorOptions.Index): names carry the
// JobId and time its entries record, and unchanged files are told by its
// hashes. Without one, versions are named from their mtime and JobId 0,
// and files are compared by reading them.
type Retention struct {
	m        *Mirror
	versions int
	idx      Index
	opt      RetentionOptions

	rootFD  int // O_PATH fd of the root between Begin and End, or -1
	pending []keptVersion
	errs    int64 // files not replicated because their version could not be kept
}

// keptVersion is a version made during the current job, to be removed at
// its end if the file turns out unchanged.
type keptVersion struct {
	rel, key string // path under the root, Index key
	name     string // version name
	dev, ino uint64
	size     int64
	symlink  bool
	link     string   // symbolic links: the target
	sum      [32]byte // regular files: BLAKE3, when the Index vouched for it
	hasSum   bool
}

// NewRetention returns a Retention keeping up to versions (at least 1)
// previous versions of each file around m. idx is m's Index (nil: the
// one in m's options, if any).
func NewRetention(m *Mirror, versions int, idx Index, opt RetentionOptions) *Retention {
	if idx == nil {
		idx = m.opt.Index
	}
	if opt.Logf == nil {
		opt.Logf = m.opt.Logf
	}
	r := &Retention{m: m, versions: max(versions, 1), idx: idx, opt: opt, rootFD: -1}
	// What a Differential makes stale is kept as a version too.
	m.beforeStale = func(f *bacularec.File) error {
		if r.rootFD < 0 {
			return nil
		}
		return r.keep(f)
	}
	return r
}

// Versions returns how many previous versions of a file are kept.
func (r *Retention) Versions() int { return r.versions }

// Unwrap implements Unwrapper: the Mirror.
func (r *Retention) Unwrap() Target { return r.m }

// Stats implements StatsReporter: the Mirror's counts, plus the files not
// replicated because their version could not be kept.
func (r *Retention) Stats() Stats {
	s := r.m.Stats()
	s.Errors += r.errs
	return s
}

// Begin implements Target.
func (r *Retention) Begin(ctx context.Context, job *bacularec.Job) error {
	err := r.m.Begin(ctx, job)
	// Begin put in place what an unfinished job left: settle its versions.
	serr := r.settle()
	r.closeRoot()
	if err = errors.Join(err, serr); err != nil {
		return err
	}
	fd, err := openRoot(r.m.root)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTargetFailed, err)
	}
	r.rootFD = fd
	return nil
}

// Put implements Target: it keeps what f.Path holds as a version, then
// puts f with the Mirror.
func (r *Retention) Put(ctx context.Context, f *bacularec.File, c Content) error {
	// With skip_unchanged the Mirror leaves an unchanged link or special
	// file alone: nothing is replaced, no version is needed (and making
	// one would change the ctime its index trusts).
	unchanged := r.m.opt.SkipUnchanged && r.m.w != nil &&
		(f.Type == bacularec.TypeSymlink || f.Type == bacularec.TypeLinkSaved || f.Type == bacularec.TypeSpecial) &&
		r.m.sameEntry(f)
	if r.rootFD >= 0 && replaces(f.Type) && !unchanged {
		if err := r.keep(f); err != nil {
			drain(c)
			if isFatalErrno(err) {
				return fmt.Errorf("%w: keeping the previous version of %s: %w", ErrTargetFailed, f.Path, err)
			}
			if r.m.seen != nil {
				r.m.see(f.Path) // left as it was: not for delete_removed
			}
			r.errs++
			return &FileError{Path: f.Path, Err: fmt.Errorf("previous version not kept, file left as it was: %w", err)}
		}
	}
	return r.m.Put(ctx, f, c)
}

// End implements Target: the job ends on the Mirror, then versions of
// unchanged files are removed and the paths touched pruned.
func (r *Retention) End(ctx context.Context, job *bacularec.Job) error {
	var errs []error
	if r.m.seen != nil && r.rootFD >= 0 && job.OK() && job.Level == 'F' {
		errs = append(errs, r.keepRemoved())
	}
	errs = append(errs, r.m.End(ctx, job), r.settle())
	r.closeRoot()
	return errors.Join(errs...)
}

// Close implements io.Closer.
func (r *Retention) Close() error {
	err := r.m.Close()
	err = errors.Join(err, r.settle())
	r.closeRoot()
	return err
}

func (r *Retention) closeRoot() {
	if r.rootFD >= 0 {
		unix.Close(r.rootFD)
		r.rootFD = -1
	}
}

func (r *Retention) logf(format string, args ...any) {
	if r.opt.Logf != nil {
		r.opt.Logf(format, args...)
	}
}

// replaces reports whether a record of type t may replace or remove what
// is at its path (the others are not restored).
func replaces(t bacularec.FileType) bool {
	switch t {
	case bacularec.TypeReg, bacularec.TypeRegEmpty, bacularec.TypeFIFO, bacularec.TypeRaw,
		bacularec.TypeLinkSaved, bacularec.TypeSymlink, bacularec.TypeDirEnd, bacularec.TypeSpecial,
		bacularec.TypeDeleted:
		return true
	}
	return false
}

// rel returns where backed-up path p lands under the root, as the Mirror
// lays it out, and the Index key prefix of the paths below the root
// (what strip_prefix removed). ok is false for paths the Mirror refuses or
// that name the root.
func (r *Retention) rel(p string) (rel, keyBase string, ok bool) {
	rest := p
	if pre := r.m.opt.StripPrefix; pre != "" && strings.HasPrefix(p, pre) {
		if s := p[len(pre):]; s == "" || s[0] == '/' || pre[len(pre)-1] == '/' {
			rest = s
		}
	}
	rel, err := cleanRel(rest)
	if err != nil || rel == "" || isReserved(rel) {
		return "", "", false
	}
	keyBase = strings.TrimSuffix(p[:len(p)-len(rest)], "/")
	return rel, keyBase, true
}

// keep keeps as versions what the Mirror is about to replace or remove
// for f.
func (r *Retention) keep(f *bacularec.File) error {
	rel, keyBase, ok := r.rel(f.Path)
	if !ok {
		return nil
	}
	deleted := f.Type == bacularec.TypeDeleted
	wantDir := strings.HasSuffix(f.Path, "/")
	dir, name := splitRel(rel)
	pfd, err := walkDir(r.rootFD, dir, false, 0)
	if err != nil {
		var nd *errNotDir
		var sl *errSymlinkAt
		switch {
		case errors.Is(err, unix.ENOENT) || deleted:
			// Nothing there; or a deletion, which never replaces what
			// is above its path.
			return nil
		case errors.As(err, &nd):
			return r.keepPath(nd.at, keyBase+"/"+nd.at)
		case errors.As(err, &sl):
			// The Mirror replaces a symbolic link on the way by a
			// directory (it made the link in an earlier job).
			return r.keepPath(sl.at, keyBase+"/"+sl.at)
		}
		return err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFLNK:
		if deleted && wantDir {
			return nil // the Mirror removes only a directory there
		}
		return r.keepOne(pfd, name, rel, pathKey2(f.Path), &st)
	case unix.S_IFDIR:
		if deleted != wantDir || f.Type == bacularec.TypeDirEnd {
			return nil // left in place
		}
		return r.keepTree(pfd, name, rel, pathKey2(f.Path))
	}
	return nil
}

// keepPath keeps what is at rel (a regular file or symbolic link), if
// anything.
func (r *Retention) keepPath(rel, key string) error {
	dir, name := splitRel(rel)
	pfd, err := walkDir(r.rootFD, dir, false, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if t := st.Mode & unix.S_IFMT; t == unix.S_IFREG || t == unix.S_IFLNK {
		return r.keepOne(pfd, name, rel, key, &st)
	}
	return nil
}

// keepOne links name in pfd (rel under the root, Index key key, stat st)
// as a version.
func (r *Retention) keepOne(pfd int, name, rel, key string, st *unix.Stat_t) error {
	t, job := time.Unix(st.Mtim.Sec, st.Mtim.Nsec), uint32(0)
	var e IndexEntry
	known := false
	if r.idx != nil {
		var ok bool
		e, ok, _ = r.idx.Get(key)
		known = ok && e.Dev == st.Dev && e.Ino == st.Ino && e.Size == st.Size && e.Mtime == st.Mtim.Nano()
	}
	if known {
		t, job = time.Unix(e.Time, 0), e.JobID
	}
	vname, err := linkVersion(r.rootFD, pfd, name, rel, VersionName(t, job, 1), st)
	if err != nil {
		return err
	}
	kv := keptVersion{rel: rel, key: key, name: vname, dev: st.Dev, ino: st.Ino, size: st.Size,
		symlink: st.Mode&unix.S_IFMT == unix.S_IFLNK}
	if kv.symlink {
		if kv.link, err = readlinkat(pfd, name); err != nil {
			return err
		}
	} else if known && e.Ctime == st.Ctim.Nano() {
		kv.sum, kv.hasSum = e.Sum, true
		// Linking changed the file's ctime, not the file: the entry
		// still describes it, and the Mirror may trust it.
		var now unix.Stat_t
		if unix.Fstatat(pfd, name, &now, unix.AT_SYMLINK_NOFOLLOW) == nil && now.Dev == st.Dev &&
			now.Ino == st.Ino && now.Size == st.Size && now.Mtim == st.Mtim {
			e.Ctime = now.Ctim.Nano()
			if err := r.idx.Put(key, e); err != nil {
				return fmt.Errorf("%w: index: %w", ErrTargetFailed, err)
			}
		}
	}
	r.pending = append(r.pending, kv)
	return nil
}

// keepTree keeps every regular file and symbolic link in directory name
// of pfd (rel under the root, Index key key).
func (r *Retention) keepTree(pfd int, name, rel, key string) error {
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), rel)
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return err
	}
	var errs []error
	for _, ent := range ents {
		n := ent.Name()
		if strings.HasPrefix(n, extract.TempPrefix) {
			continue // the Mirror's, being written
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			errs = append(errs, err)
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG, unix.S_IFLNK:
			errs = append(errs, r.keepOne(fd, n, rel+"/"+n, key+"/"+n, &st))
		case unix.S_IFDIR:
			errs = append(errs, r.keepTree(fd, n, rel+"/"+n, key+"/"+n))
		}
	}
	return errors.Join(errs...)
}

// keepRemoved keeps what the Mirror's delete_removed is about to remove
// after a Full: what the Full did not contain. What cannot be kept is
// marked as contained, so that it stays.
func (r *Retention) keepRemoved() error {
	prefix := strings.TrimSuffix(r.m.opt.StripPrefix, "/")
	var errs []error
	var walk func(dirfd int, rel string)
	walk = func(dirfd int, rel string) {
		fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			errs = append(errs, &FileError{Path: prefix + "/" + rel, Err: err})
			return
		}
		d := os.NewFile(uintptr(fd), rel)
		defer d.Close()
		ents, err := d.ReadDir(-1)
		if err != nil {
			errs = append(errs, &FileError{Path: prefix + "/" + rel, Err: err})
			return
		}
		for _, ent := range ents {
			n := ent.Name()
			if strings.HasPrefix(n, extract.TempPrefix) || rel == "" && n == VersionsDir {
				continue
			}
			r2 := n
			if rel != "" {
				r2 = rel + "/" + n
			}
			backed := prefix + "/" + r2
			if _, seen := r.m.seen[pathKey(backed)]; seen {
				if ent.IsDir() {
					if sub, err := unix.Openat(fd, n, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
						walk(sub, r2)
						unix.Close(sub)
					}
				}
				continue
			}
			var st unix.Stat_t
			err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW)
			if err == nil {
				switch st.Mode & unix.S_IFMT {
				case unix.S_IFREG, unix.S_IFLNK:
					err = r.keepOne(fd, n, r2, backed, &st)
				case unix.S_IFDIR:
					err = r.keepTree(fd, n, r2, backed)
				}
			}
			if err != nil {
				r.m.see(backed)
				r.errs++
				if isFatalErrno(err) {
					errs = append(errs, fmt.Errorf("%w: keeping %s: %w", ErrTargetFailed, backed, err))
				} else {
					errs = append(errs, &FileError{Path: backed, Err: fmt.Errorf("not removed: previous version not kept: %w", err)})
				}
			}
		}
	}
	walk(r.rootFD, "")
	return errors.Join(errs...)
}

// settle removes the versions made for files that turned out unchanged,
// prunes the paths touched, and flushes the Index. Failures are warnings,
// unless nothing more can be written to the target.
func (r *Retention) settle() error {
	if len(r.pending) == 0 {
		return nil
	}
	pending := r.pending
	r.pending = nil
	rootFD := r.rootFD
	if rootFD < 0 {
		fd, err := openRoot(r.m.root)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrTargetFailed, err)
		}
		defer unix.Close(fd)
		rootFD = fd
	}
	var fatal []error
	report := func(what, rel string, err error) {
		if err == nil {
			return
		}
		if isFatalErrno(err) {
			fatal = append(fatal, err)
		}
		r.logf("replica: %s: %s /%s: %v", r.m.root, what, rel, err)
	}
	var order []string
	touched := map[string]bool{}
	for _, kv := range pending {
		report("version "+kv.name+" of", kv.rel, r.settleOne(rootFD, kv))
		if !touched[kv.rel] {
			touched[kv.rel] = true
			order = append(order, kv.rel)
		}
	}
	for _, rel := range order {
		report("pruning the versions of", rel, r.prune(rootFD, rel))
	}
	if r.idx != nil {
		if err := r.idx.Flush(); err != nil {
			fatal = append(fatal, fmt.Errorf("index: %w", err))
		}
	}
	if len(fatal) > 0 {
		return fmt.Errorf("%w: %w", ErrTargetFailed, errors.Join(fatal...))
	}
	return nil
}

// settleOne removes version kv if its file is unchanged.
func (r *Retention) settleOne(rootFD int, kv keptVersion) error {
	vfd, err := walkDir(rootFD, versionsDirOf(kv.rel), false, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	defer unix.Close(vfd)
	var vst unix.Stat_t
	if unix.Fstatat(vfd, kv.name, &vst, unix.AT_SYMLINK_NOFOLLOW) != nil || vst.Dev != kv.dev || vst.Ino != kv.ino {
		return nil // settled already (the same path twice in a job)
	}
	dir, name := splitRel(kv.rel)
	var cur unix.Stat_t
	pfd, err := walkDir(rootFD, dir, false, 0)
	if err != nil {
		return nil // the path is gone: keep the version
	}
	defer unix.Close(pfd)
	if unix.Fstatat(pfd, name, &cur, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return nil
	}
	same := cur.Dev == kv.dev && cur.Ino == kv.ino
	typ := cur.Mode & unix.S_IFMT
	drop := same
	switch {
	case same:
	case kv.symlink:
		if typ == unix.S_IFLNK {
			l, err := readlinkat(pfd, name)
			drop = err == nil && l == kv.link
		}
	case typ == unix.S_IFREG && cur.Size == kv.size:
		if drop, err = r.sameContent(kv, vfd, pfd, name, &cur); err != nil {
			return err
		}
	}
	if !drop {
		return nil
	}
	if err := unix.Unlinkat(vfd, kv.name, 0); err != nil && err != unix.ENOENT {
		return err
	}
	if same && r.idx != nil && typ == unix.S_IFREG {
		// Unlinking changed the ctime again: keep the entry trusted.
		if e, ok, _ := r.idx.Get(kv.key); ok && e.Dev == cur.Dev && e.Ino == cur.Ino && e.Ctime == cur.Ctim.Nano() {
			var now unix.Stat_t
			if unix.Fstatat(pfd, name, &now, unix.AT_SYMLINK_NOFOLLOW) == nil && now.Ino == cur.Ino && now.Dev == cur.Dev {
				e.Ctime = now.Ctim.Nano()
				return r.idx.Put(kv.key, e)
			}
		}
	}
	return nil
}

// sameContent reports whether the file now at name in pfd (stat cur) has
// the content of version kv: by the Index's BLAKE3 when it vouches for
// both, by reading both otherwise.
func (r *Retention) sameContent(kv keptVersion, vfd, pfd int, name string, cur *unix.Stat_t) (bool, error) {
	if kv.hasSum && r.idx != nil {
		if e, ok, _ := r.idx.Get(kv.key); ok && e.Dev == cur.Dev && e.Ino == cur.Ino && e.Size == cur.Size &&
			e.Mtime == cur.Mtim.Nano() && e.Ctime == cur.Ctim.Nano() {
			return e.Sum == kv.sum, nil
		}
	}
	open := func(dirfd int, n string) (*os.File, error) {
		fd, err := unix.Openat(dirfd, n, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), n), nil
	}
	a, err := open(vfd, kv.name)
	if err != nil {
		return false, err
	}
	defer a.Close()
	b, err := open(pfd, name)
	if err != nil {
		return false, err
	}
	defer b.Close()
	ba, bb := make([]byte, 256<<10), make([]byte, 256<<10)
	for {
		na, ea := io.ReadFull(a, ba)
		nb, eb := io.ReadFull(b, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == ea, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}

// prune removes the versions of rel beyond the newest r.versions, and
// the directories under VersionsDir that are left empty (those of
// unchanged files).
func (r *Retention) prune(rootFD int, rel string) error {
	names, vfd, err := versionNames(rootFD, rel)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	var errs []error
	for _, n := range names[min(len(names), r.versions):] {
		if err := unix.Unlinkat(vfd, n, 0); err != nil && err != unix.ENOENT {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
	}
	unix.Close(vfd)
	if len(names) == 0 {
		// rmdir fails on the first directory that holds anything.
		for dir := versionsDirOf(rel); dir != VersionsDir; {
			parent, name := splitRel(dir)
			pfd, err := walkDir(rootFD, parent, false, 0)
			if err != nil {
				break
			}
			err = unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR)
			unix.Close(pfd)
			if err != nil {
				break
			}
			dir = parent
		}
	}
	return errors.Join(errs...)
}
