package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/extract"
)

// MirrorOptions tune a Mirror.
type MirrorOptions struct {
	// StripPrefix is removed from the front of backed-up paths (at a
	// component boundary) before they are laid out under the root.
	StripPrefix string
	// SkipUnchanged compares each regular file with what the target holds
	// and writes nothing when the content is the same; only metadata that
	// changed is applied. With an Index, a file whose stat still matches
	// its entry is compared with the entry's hashes and never read;
	// otherwise it is read and compared as the content streams by. Either
	// way, when a file differs, what precedes the first changed chunk is
	// copied from the old file by the kernel and only the rest is written.
	SkipUnchanged bool
	// Verify reads every written file back and checks its BLAKE3 against
	// the content received; a mismatch is a FileError (ErrVerify), and the
	// job is not recorded as done, so it is replayed.
	Verify bool
	// Index is the target's state index; nil keeps none.
	Index Index
	// DeleteRemoved removes, after a Full job that ended OK, everything
	// under the root that the Full did not contain. The caller is
	// responsible for allowing it only with a snapshot to roll back to
	// (see Config.Check).
	DeleteRemoved bool
	// NoOwner keeps files owned by the running user.
	NoOwner bool
	// CommitFiles and CommitBytes bound what waits under temporary names
	// before being flushed and renamed into place together (defaults 1000
	// files, 256 MiB); CommitDelay bounds how long the oldest of them
	// waits (default 200ms), so that a file is visible soon after its last
	// block is read even when the batch fills slowly. The engine also
	// puts them in place when the stream pauses (see Batcher).
	CommitFiles int
	CommitBytes int64
	CommitDelay time.Duration
	// Groups are the consistency groups (see Group).
	Groups []Group
	// Journal is a file (in a state directory on local disk, one per
	// target) that marks a job in progress. When Begin finds one left by a
	// writer that died, it first removes the temporary files that writer
	// left under the root; the interrupted job itself is replayed by the
	// engine (its JobLog did not record it done). Empty: no journal, and
	// temporary files of a crash stay until removed by hand.
	Journal string
	// History is a directory (in a state directory on local disk, one per
	// target) where the Mirror records, for each backup chain (client,
	// fileset and job name), the paths written by Incremental and
	// Differential jobs since the chain's last Full that ended OK. A
	// Differential that ended OK then removes those it did not contain:
	// what an Incremental in between added and is gone again, which no
	// deletion record announces (see history.go). Empty: no record, and
	// such files stay.
	History string
	// Logf receives warnings (metadata not applied ...).
	Logf func(format string, args ...any)
	// Now gives the time recorded in index entries (default time.Now).
	Now func() time.Time
}

// VersionsDir is the directory under a target's root that holds the
// previous versions of files (mode = retention). A Mirror never deletes it
// (delete_removed), and backed-up paths under /.brc-versions are refused.
const VersionsDir = ".brc-versions"

// Mirror is a Target that keeps a 1:1 replica of the backed-up tree under
// a root directory: /etc/hosts is ROOT/etc/hosts, with its owner, mode,
// times, ACLs, xattrs, holes, and links, the way "replicad extract" (and
// bextract) restore it. Full, Incremental and Differential jobs apply in
// order; accurate-mode deletions remove paths.
//
// Every file appears atomically: its content goes to a temporary name in
// its directory; batches of finished files are flushed to stable storage
// (syncfs) and then renamed into place, so after a crash a name holds the
// old file or the whole new one. Nothing is written outside the root:
// paths with "..", and symbolic links met on the way, are refused (see
// package internal/extract).
type Mirror struct {
	root string
	opt  MirrorOptions

	w     *extract.Writer
	job   *bacularec.Job
	stats Stats
	pendB int64
	// pendSince is when the oldest file waiting under a temporary name
	// was finished, at the latest (zero: none waits).
	pendSince time.Time
	written   map[*bacularec.File]*writtenFile
	errs      []error // from Placed, returned by the next Put or End
	seen      map[uint64]struct{}
	// heldDels are the deletions in consistency groups, applied by the
	// switch.
	heldDels []*bacularec.File
	buf      []byte
	fatal    error
	hist     *history // the paths this job writes, for its chain (History)
	// beforeStale, when set, is called before a path a Differential made
	// stale is removed (a Retention keeps it as a version); an error
	// leaves the path alone.
	beforeStale func(f *bacularec.File) error
}

type writtenFile struct {
	sum    [32]byte
	chunks [][32]byte
	verify bool // read it back when placed
}

// NewMirror returns a Mirror of root. Nothing is touched before Begin.
func NewMirror(root string, opt MirrorOptions) *Mirror {
	if opt.CommitFiles <= 0 {
		opt.CommitFiles = 1000
	}
	if opt.CommitBytes <= 0 {
		opt.CommitBytes = 256 << 20
	}
	if opt.CommitDelay <= 0 {
		opt.CommitDelay = 200 * time.Millisecond
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Mirror{root: root, opt: opt}
}

// Root returns the target's root directory.
func (m *Mirror) Root() string { return m.root }

// Stats implements StatsReporter.
func (m *Mirror) Stats() Stats { return m.stats }

// Begin implements Target. It checks that the root can be written to: a
// read-only, full or forbidden root fails the target now.
func (m *Mirror) Begin(ctx context.Context, job *bacularec.Job) error {
	if m.w != nil {
		if err := m.closeWriter(); err != nil && IsTargetFailure(err) {
			return err
		}
	}
	if err := os.MkdirAll(m.root, 0o755); err != nil {
		return fmt.Errorf("%w: %w", ErrTargetFailed, err)
	}
	// Asked, not tried: a probe file would be a write on every job, and
	// an unchanged job must write nothing.
	if err := writable(m.root); err != nil {
		return fmt.Errorf("%w: root not writable: %w", ErrTargetFailed, err)
	}
	var hold func(*bacularec.File) bool
	if len(m.opt.Groups) > 0 {
		hold = func(f *bacularec.File) bool { return groupOf(m.opt.Groups, f.Path) != "" }
	}
	w, err := extract.New(m.root, extract.Options{
		Hold:   hold,
		Atomic: true, Sync: true, Deletions: true, KeepDirTimes: true,
		NoOwner:     m.opt.NoOwner,
		StripPrefix: m.opt.StripPrefix,
		Placed:      m.placed,
		Logf:        m.opt.Logf,
		// A directory that was a symbolic link in an earlier job: the
		// link is ours (the replica's), replacing it is what the backup
		// says.
		ReplaceSymlink: func(string) bool { return true },
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTargetFailed, err)
	}
	m.w, m.job, m.fatal = w, job, nil
	m.heldDels = nil
	if m.opt.Journal != "" {
		if err := m.recover(); err != nil {
			m.w.Close()
			m.w = nil
			return fmt.Errorf("%w: %w", ErrTargetFailed, err)
		}
		if err := startJournal(m.opt.Journal, job); err != nil {
			m.w.Close()
			m.w = nil
			return fmt.Errorf("%w: journal: %w", ErrTargetFailed, err)
		}
	}
	m.written = map[*bacularec.File]*writtenFile{}
	m.closeHistory()
	if m.opt.History != "" && job.Started && job.Level != 'F' {
		if m.hist, err = openHistory(m.opt.History, job); err != nil {
			m.w.Close()
			m.w = nil
			return historyFailed(err)
		}
	}
	m.seen = nil
	if m.opt.DeleteRemoved && job.Level == 'F' || m.hist != nil && job.Level == 'D' {
		m.seen = map[uint64]struct{}{}
	}
	return ctx.Err()
}

// recover finishes what a writer that died left: a consistency-group
// switch to complete, temporary files to remove.
func (m *Mirror) recover() error {
	prev, err := readJournal(m.opt.Journal)
	if err != nil || prev == nil {
		return err
	}
	err = m.recoverSwitch(prev)
	n, rerr := removeTemps(m.root)
	if m.opt.Logf != nil {
		m.opt.Logf("replica: %s: job %s was interrupted (pid %d, started %s): %d temporary files removed",
			m.root, prev.Job, prev.PID, prev.Started.Format(time.RFC3339), n)
	}
	return errors.Join(err, rerr)
}

// Put implements Target.
func (m *Mirror) Put(ctx context.Context, f *bacularec.File, c Content) error {
	if m.w == nil {
		drain(c)
		return ErrClosed
	}
	m.contains(f)
	if m.reserved(f.Path) {
		drain(c)
		m.stats.Errors++
		return &FileError{Path: f.Path, Err: fmt.Errorf("%w: %s is reserved for previous versions", ErrUnsafePath, VersionsDir)}
	}
	var err error
	switch f.Type {
	case bacularec.TypeReg, bacularec.TypeRegEmpty, bacularec.TypeFIFO, bacularec.TypeRaw:
		err = m.putFile(f, c)
	case bacularec.TypeDeleted:
		if err = drain(c); err == nil && len(m.opt.Groups) > 0 && groupOf(m.opt.Groups, f.Path) != "" {
			m.heldDels = append(m.heldDels, f) // applied by the group's switch
			m.stats.Files++
			break
		}
		if err == nil {
			err = m.remove(f)
		}
		if err == nil {
			m.stats.Files++
		}
	default:
		if err = drain(c); err == nil && m.opt.SkipUnchanged && m.sameEntry(f) {
			m.stats.Files++ // left as it is (Skipped counts regular files)
			break
		}
		if err == nil {
			err = m.w.Apply(&bacularec.Item{Kind: bacularec.KindFileEnd, File: f})
		}
		if err == nil {
			m.stats.Files++
		}
	}
	return m.finishPut(ctx, f, err)
}

// finishPut ends a Put of f that got err: the error classified, the
// pending files committed when enough wait, errors of files placed since
// the last Put collected.
func (m *Mirror) finishPut(ctx context.Context, f *bacularec.File, err error) error {
	err = m.classify(f, err)
	m.commitSoon()
	if err := errors.Join(err, m.takeErrs()); err != nil {
		return err
	}
	return ctx.Err()
}

// classify turns a Writer error into a FileError, or a target failure
// when nothing more can be written.
func (m *Mirror) classify(f *bacularec.File, err error) error {
	if err == nil {
		return nil
	}
	var ce *contentError
	if errors.Is(err, ErrLagging) || errors.As(err, &ce) {
		return err // the stream, not the file: the engine replays the job
	}
	if extract.IsFatal(err) || isFatalErrno(err) {
		m.fatal = err
		return fmt.Errorf("%w: %w", ErrTargetFailed, err)
	}
	var fes []error
	for _, e := range flatten(err) {
		path := f.Path
		var pe *extract.PathError
		if errors.As(e, &pe) {
			path = pe.Path
		}
		switch {
		case errors.Is(e, extract.ErrLinkTarget):
			e = fmt.Errorf("%w: %w", ErrLinkTarget, e)
		case errors.Is(e, extract.ErrUnsafePath):
			e = fmt.Errorf("%w: %w", ErrUnsafePath, e)
		}
		fes = append(fes, &FileError{Path: path, Err: e})
	}
	m.stats.Errors += int64(len(fes))
	return errors.Join(fes...)
}

// contentError is a failure to read a file's content from the stream.
type contentError struct{ err error }

func (e *contentError) Error() string { return e.err.Error() }
func (e *contentError) Unwrap() error { return e.err }

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// commitDue reports whether the files waiting under temporary names are
// enough, or have waited long enough, to be put in place now.
func (m *Mirror) commitDue() bool {
	n := m.w.Pending()
	if n == 0 {
		return false
	}
	if n >= m.opt.CommitFiles || m.pendB >= m.opt.CommitBytes {
		return true
	}
	now := m.opt.Now()
	if m.pendSince.IsZero() {
		m.pendSince = now
		return false
	}
	return now.Sub(m.pendSince) >= m.opt.CommitDelay
}

// commitPending puts in place what waits under temporary names, waiting
// for the flush. A file that cannot be put in place is a FileError, as at
// End; a file system that cannot be flushed fails the target. Errors come
// out of the next Put or End.
func (m *Mirror) commitPending() {
	if m.w == nil || m.w.Pending() == 0 {
		return
	}
	m.pendB = 0
	m.pendSince = time.Time{}
	m.commitErrs(m.w.Commit())
}

// commitSoon starts putting in place what waits once enough does, or the
// oldest has waited CommitDelay: the file system is flushed in the
// background while the next files are written, and the files are renamed
// into place by a later call once the flush is over.
func (m *Mirror) commitSoon() {
	if m.w.Flushing() {
		m.commitErrs(m.w.Reap())
	}
	// commitDue runs during a flush too: the files finished meanwhile
	// have waited since then, and go as soon as it is over.
	if m.commitDue() && !m.w.Flushing() {
		m.pendB = 0
		m.pendSince = time.Time{}
		m.commitErrs(m.w.StartCommit())
	}
}

// commitErrs sorts what putting files in place returned.
func (m *Mirror) commitErrs(err error) {
	for _, e := range flatten(err) {
		if e == nil {
			continue
		}
		var pe *extract.PathError
		if errors.As(e, &pe) && !extract.IsFatal(e) && !isFatalErrno(e) {
			m.stats.Errors++
			m.errs = append(m.errs, &FileError{Path: pe.Path, Err: e})
			continue
		}
		m.fatal = e
		m.errs = append(m.errs, fmt.Errorf("%w: %w", ErrTargetFailed, e))
	}
}

// FlushPending implements Batcher.
func (m *Mirror) FlushPending() { m.commitPending() }

func (m *Mirror) takeErrs() error {
	err := errors.Join(m.errs...)
	m.errs = nil
	return err
}

// putFile writes a regular file, or with SkipUnchanged first compares it
// with what is there.
func (m *Mirror) putFile(f *bacularec.File, c Content) error {
	var h *hasher
	if m.opt.Index != nil || m.opt.Verify || m.opt.SkipUnchanged {
		h = newHasher()
	}
	if m.opt.SkipUnchanged && (f.Type == bacularec.TypeReg || f.Type == bacularec.TypeRegEmpty) {
		if cmp := m.comparer(f); cmp != nil {
			defer cmp.close()
			return m.compare(f, c, h, cmp)
		}
	}
	if err := m.w.Apply(&bacularec.Item{Kind: bacularec.KindFile, File: f}); err != nil {
		drain(c)
		return err
	}
	return m.write(f, c, h)
}

// write streams the rest of c into f (started with KindFile) and
// finishes it.
func (m *Mirror) write(f *bacularec.File, c Content, h *hasher) error {
	for {
		off, p, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			m.w.Abort(f) // f is shared with the other targets: not f.Incomplete
			return &contentError{err}
		}
		if h != nil {
			h.write(off, p)
		}
		if err := m.w.Apply(&bacularec.Item{Kind: bacularec.KindData, File: f, Offset: off, Data: p}); err != nil {
			drain(c)
			return err
		}
		m.stats.Bytes += int64(len(p))
		m.pendB += int64(len(p))
		// A long file must not hold back the files finished before it;
		// f itself is not pending yet.
		m.commitSoon()
	}
	if h != nil {
		sum, chunks := h.finish(f.Stat.Size)
		m.written[f] = &writtenFile{sum: sum, chunks: chunks, verify: m.opt.Verify}
	}
	if err := m.w.Apply(&bacularec.Item{Kind: bacularec.KindFileEnd, File: f}); err != nil {
		delete(m.written, f)
		return err
	}
	m.stats.Files++
	if f.DigestErr != nil {
		return f.DigestErr // written as the backup holds it, but reported
	}
	return nil
}

// sameEntry reports whether the symbolic link, hard link or special file
// f is already on the target as the backup has it, so that it is not made
// again: recreating a link dirties a block (long targets) and changes the
// directory, which skip_unchanged promises not to do.
func (m *Mirror) sameEntry(f *bacularec.File) bool {
	info, err := m.w.Stat(f.Path)
	if err != nil {
		return false
	}
	st := &f.Stat
	switch f.Type {
	case bacularec.TypeSymlink:
		if info.Mode&0o170000 != 0o120000 || info.Mtime/1e9 != st.Mtime || info.UID != st.UID || info.GID != st.GID {
			return false
		}
		target, err := m.w.Readlink(f.Path)
		return err == nil && target == f.Link
	case bacularec.TypeLinkSaved:
		first, err := m.w.Stat(f.Link)
		return err == nil && first.Dev == info.Dev && first.Ino == info.Ino
	case bacularec.TypeSpecial:
		return info.Mode == st.Mode && info.Rdev == st.Rdev && info.Mtime/1e9 == st.Mtime &&
			info.UID == st.UID && info.GID == st.GID
	case bacularec.TypeDirEnd:
		// ACLs and xattrs cannot be compared from a stat: applied again.
		return info.Mode == st.Mode && info.Mtime/1e9 == st.Mtime && info.UID == st.UID &&
			info.GID == st.GID && len(f.ACLs) == 0 && len(f.Xattrs) == 0
	}
	return false
}

// comparison is the state of comparing a file with the target's copy.
type comparison struct {
	old     *os.File // the copy, when it must be read (nil: trust the index)
	entry   IndexEntry
	trusted bool
}

func (c *comparison) close() {
	if c.old != nil {
		c.old.Close()
	}
}

// comparer says how f can be compared with the target's copy, or nil when
// it cannot be the same (missing, another type or size).
func (m *Mirror) comparer(f *bacularec.File) *comparison {
	info, err := m.w.Stat(f.Path)
	if err != nil || info.Mode&0o170000 != 0o100000 || info.Size != f.Stat.Size {
		return nil
	}
	c := &comparison{}
	if m.opt.Index != nil {
		if e, ok, err := m.opt.Index.Get(pathKey2(f.Path)); err == nil && ok &&
			e.Size == info.Size && e.Mtime == info.Mtime && e.Ctime == info.Ctime &&
			e.Ino == info.Ino && e.Dev == info.Dev && int64(len(e.Chunks)) == (e.Size+ChunkSize-1)/ChunkSize {
			c.entry, c.trusted = e, true
			return c
		}
	}
	old, err := m.w.Open(f.Path)
	if err != nil {
		return nil
	}
	c.old = old
	return c
}

// compare streams c through the hasher chunk by chunk, checking each
// chunk against the target's copy. At the first difference it starts a
// new file with the equal part copied from the old one and writes the
// rest.
func (m *Mirror) compare(f *bacularec.File, c Content, h *hasher, cmp *comparison) error {
	if m.buf == nil {
		m.buf = make([]byte, 0, ChunkSize)
	}
	cb := m.buf[:0]
	var old []byte
	chunk := 0
	same := true
	// flush checks the full (or last) chunk in cb.
	flush := func() error {
		h.add(cb)
		if h.inCh > 0 {
			h.endChunk() // the last, partial chunk
		}
		if cmp.trusted {
			same = h.chunks[chunk] == cmp.entry.Chunks[chunk]
		} else {
			if cap(old) < len(cb) {
				old = make([]byte, ChunkSize)
			}
			n, err := cmp.old.ReadAt(old[:len(cb)], int64(chunk)*ChunkSize)
			same = n == len(cb) && bytes.Equal(old[:n], cb) && (err == nil || err == io.EOF)
		}
		if !same {
			return nil
		}
		chunk++
		cb = cb[:0]
		return nil
	}
	// feed appends p (logical bytes) to cb, flushing full chunks, and
	// returns the part of p not consumed once a difference was found.
	feed := func(p []byte) []byte {
		for len(p) > 0 && same {
			n := min(len(p), ChunkSize-len(cb))
			cb = append(cb, p[:n]...)
			p = p[n:]
			if len(cb) == ChunkSize {
				flush()
			}
		}
		return p
	}
	pos := int64(0)
	fill := func(to int64) {
		for pos < to && same {
			n := min(to-pos, int64(len(zeros)))
			rest := feed(zeros[:n])
			pos += n - int64(len(rest))
		}
	}
	var rest []byte
	restOff := int64(0)
	for same {
		off, p, err := c.Next()
		if err == io.EOF {
			fill(f.Stat.Size)
			if same && len(cb) > 0 {
				flush()
			}
			break
		}
		if err != nil {
			return err
		}
		if off < pos {
			same = false // overlapping pieces: write it plainly
			rest, restOff = p, off
			break
		}
		fill(off)
		if !same {
			rest, restOff = p, off
			break
		}
		r := feed(p)
		pos += int64(len(p) - len(r))
		if !same {
			rest, restOff = r, pos
		}
	}
	if same {
		// Unchanged content: at most the metadata to apply.
		m.stats.Skipped++
		sum, chunks := h.finish(f.Stat.Size)
		if cmp.trusted && cmp.entry.Meta == metaHash(f) {
			m.stats.Files++
			return nil
		}
		m.written[f] = &writtenFile{sum: sum, chunks: chunks}
		if err := m.w.SetMeta(f); err != nil {
			delete(m.written, f)
			return err
		}
		return nil
	}
	// Changed from chunk on: copy the equal part, write the rest.
	if err := m.w.Apply(&bacularec.Item{Kind: bacularec.KindFile, File: f}); err != nil {
		drain(c)
		return err
	}
	start := int64(chunk) * ChunkSize
	if start > 0 {
		src := cmp.old
		if src == nil {
			var err error
			if src, err = m.w.Open(f.Path); err != nil {
				drain(c)
				m.w.Abort(f)
				return err
			}
			defer src.Close()
		}
		if err := m.w.CopyFrom(f, src, start); err != nil {
			drain(c)
			return err
		}
	}
	// The chunk being compared has been hashed already (flush); the
	// hasher must see the rest only.
	if len(cb) > 0 {
		if err := m.w.Apply(&bacularec.Item{Kind: bacularec.KindData, File: f, Offset: start, Data: cb}); err != nil {
			drain(c)
			return err
		}
		m.stats.Bytes += int64(len(cb))
	}
	if len(rest) > 0 {
		h.write(restOff, rest)
		if err := m.w.Apply(&bacularec.Item{Kind: bacularec.KindData, File: f, Offset: restOff, Data: rest}); err != nil {
			drain(c)
			return err
		}
		m.stats.Bytes += int64(len(rest))
	}
	return m.write(f, c, h)
}

// placed is called by the Writer when a regular file is in place.
func (m *Mirror) placed(f *bacularec.File, info extract.Info) {
	wf := m.written[f]
	if wf == nil {
		return
	}
	delete(m.written, f)
	if wf.verify {
		if err := m.verify(f, wf.sum); err != nil {
			m.stats.Errors++
			m.errs = append(m.errs, &FileError{Path: f.Path, Err: err})
			if m.opt.Index != nil {
				m.opt.Index.Delete(pathKey2(f.Path))
			}
			return
		}
	}
	if m.opt.Index == nil {
		return
	}
	e := IndexEntry{Size: info.Size, Mtime: info.Mtime, Ctime: info.Ctime, Dev: info.Dev, Ino: info.Ino,
		Meta: metaHash(f), Sum: wf.sum, Chunks: wf.chunks, Time: m.opt.Now().Unix()}
	if f.Job != nil {
		e.JobID = f.Job.JobID
	}
	if err := m.opt.Index.Put(pathKey2(f.Path), e); err != nil {
		m.errs = append(m.errs, fmt.Errorf("%w: index: %w", ErrTargetFailed, err))
	}
}

// verify reads f back from the target and compares its sum (see hasher)
// with sum.
func (m *Mirror) verify(f *bacularec.File, sum [32]byte) error {
	r, err := m.w.Open(f.Path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	defer r.Close()
	h := newHasher()
	n, err := io.Copy(h, r)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	if got, _ := h.finish(n); got != sum {
		return fmt.Errorf("%w: content read back differs from what was written", ErrVerify)
	}
	return nil
}

// End implements Target: the job's files are put in place, directory
// metadata applied, the file system flushed, and with DeleteRemoved after
// a Full that ended OK, what the Full did not contain removed.
func (m *Mirror) End(ctx context.Context, job *bacularec.Job) error {
	if m.w == nil {
		return ErrClosed
	}
	errs := []error{m.switchGroups(job), m.endHistory(job), m.closeWriter()}
	if m.seen != nil && job.OK() && job.Level == 'F' && !IsTargetFailure(errors.Join(errs...)) {
		errs = append(errs, m.deleteRemoved())
	}
	m.seen = nil
	if m.opt.Index != nil {
		if err := m.opt.Index.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("%w: index: %w", ErrTargetFailed, err))
		}
	}
	errs = append(errs, m.takeErrs())
	err := errors.Join(errs...)
	if m.opt.Journal != "" && !IsTargetFailure(err) {
		if jerr := closeJournal(m.opt.Journal); jerr != nil {
			return errors.Join(err, fmt.Errorf("%w: journal: %w", ErrTargetFailed, jerr))
		}
	}
	return err
}

func (m *Mirror) closeWriter() error {
	err := m.w.Close() // commits: placed still uses m.w
	m.w = nil
	if err == nil {
		return m.takeErrs()
	}
	if m.fatal != nil || extract.IsFatal(err) {
		return fmt.Errorf("%w: %w", ErrTargetFailed, err)
	}
	var fes []error
	for _, e := range flatten(err) {
		var pe *extract.PathError
		if errors.As(e, &pe) {
			fes = append(fes, &FileError{Path: pe.Path, Err: e})
		} else {
			return fmt.Errorf("%w: %w", ErrTargetFailed, err)
		}
	}
	m.stats.Errors += int64(len(fes))
	return errors.Join(append(fes, m.takeErrs())...)
}

// endHistory ends the record of the job's chain (History): a Full that
// ended OK drops it; a Differential that ended OK removes what the record
// has and the job did not contain, then is all the record keeps.
func (m *Mirror) endHistory(job *bacularec.Job) error {
	if m.opt.History == "" || !job.Started {
		return nil
	}
	if job.Level == 'F' {
		if job.OK() && m.fatal == nil {
			if err := forgetChain(m.opt.History, job); err != nil {
				return historyFailed(err)
			}
		}
		return nil
	}
	h := m.hist
	m.hist = nil
	if h == nil {
		return nil
	}
	if err := h.close(); err != nil {
		return historyFailed(err)
	}
	if job.Level != 'D' || !job.OK() || m.fatal != nil {
		return nil
	}
	stale, err := h.stale(m.seen)
	if err != nil {
		return historyFailed(err)
	}
	var errs []error
	for _, p := range stale {
		if m.reserved(p) {
			continue
		}
		f := &bacularec.File{Type: bacularec.TypeDeleted, Path: p, Job: job}
		if m.beforeStale != nil {
			if err := m.beforeStale(f); err != nil {
				m.stats.Errors++
				errs = append(errs, &FileError{Path: p, Err: fmt.Errorf("not removed: %w", err)})
				continue
			}
		}
		if err := m.remove(f); err != nil {
			errs = append(errs, m.classify(f, err))
		}
	}
	if err := h.keepOwn(); err != nil {
		errs = append(errs, historyFailed(err))
	}
	return errors.Join(errs...)
}

// historyFailed is err of the chain's history: the target fails, since a
// record it cannot keep would leave stale files behind.
func historyFailed(err error) error {
	return fmt.Errorf("%w: history: %w", ErrTargetFailed, err)
}

// remove applies the deletion f (TypeDeleted): the path goes from the
// target and from its index.
func (m *Mirror) remove(f *bacularec.File) error {
	if err := m.w.Apply(&bacularec.Item{Kind: bacularec.KindFileEnd, File: f}); err != nil {
		return err
	}
	m.stats.Deleted++
	if m.opt.Index != nil {
		m.opt.Index.Delete(pathKey2(f.Path))
	}
	return nil
}

// closeHistory makes what a job that did not end recorded durable.
func (m *Mirror) closeHistory() {
	if m.hist != nil {
		if err := m.hist.close(); err != nil && m.opt.Logf != nil {
			m.opt.Logf("history of %s: %v", m.root, err)
		}
		m.hist = nil
	}
}

// Close implements io.Closer: files finished in a job that did not end
// are put in place; the rest of the job is left to a replay.
func (m *Mirror) Close() error {
	m.closeHistory()
	if m.w == nil {
		return nil
	}
	err := m.closeWriter()
	if m.opt.Journal != "" && !IsTargetFailure(err) {
		// Nothing temporary is left: the unfinished job is the JobLog's
		// business.
		err = errors.Join(err, closeJournal(m.opt.Journal))
	}
	return err
}

// deleteRemoved removes what the Full did not contain.
func (m *Mirror) deleteRemoved() error {
	var errs []error
	prefix := strings.TrimSuffix(m.opt.StripPrefix, "/")
	var walk func(dir, rel string)
	walk = func(dir, rel string) {
		ents, err := readDirNoAtime(dir)
		if err != nil {
			errs = append(errs, &FileError{Path: "/" + rel, Err: err})
			return
		}
		for _, d := range ents {
			name := d.Name()
			if strings.HasPrefix(name, extract.TempPrefix) || rel == "" && name == VersionsDir {
				continue
			}
			r := name
			if rel != "" {
				r = rel + "/" + name
			}
			p := filepath.Join(dir, name)
			if _, ok := m.seen[pathKey(prefix+"/"+r)]; !ok {
				if err := os.RemoveAll(p); err != nil {
					errs = append(errs, &FileError{Path: prefix + "/" + r, Err: err})
					continue
				}
				m.stats.Deleted++
				if m.opt.Index != nil {
					m.opt.Index.Delete(prefix + "/" + r)
				}
				continue
			}
			if d.Type()&fs.ModeType == fs.ModeDir {
				walk(p, r)
			}
		}
	}
	walk(m.root, "")
	return errors.Join(errs...)
}

// contains notes that the job contains f: for delete_removed after a Full
// (seen), and for the chain's history.
func (m *Mirror) contains(f *bacularec.File) {
	if m.seen != nil {
		m.see(f.Path)
	}
	if m.hist != nil && f.Type != bacularec.TypeDeleted {
		m.hist.add(f.Path)
	}
}

// reserved reports whether backed-up path p lands in VersionsDir.
func (m *Mirror) reserved(p string) bool {
	if m.opt.StripPrefix != "" {
		pre := strings.TrimSuffix(m.opt.StripPrefix, "/")
		if rest, ok := strings.CutPrefix(p, pre); ok && (rest == "" || rest[0] == '/') {
			p = rest
		}
	}
	p = strings.TrimPrefix(p, "/")
	return p == VersionsDir || strings.HasPrefix(p, VersionsDir+"/")
}

// see records p and its ancestors (a Full contains the directories above
// its FileSet's top only implicitly) as contained in the Full.
func (m *Mirror) see(p string) {
	for {
		k := pathKey(p)
		if _, ok := m.seen[k]; ok {
			return
		}
		m.seen[k] = struct{}{}
		p = strings.TrimSuffix(p, "/")
		i := strings.LastIndexByte(p, '/')
		if i <= 0 {
			return
		}
		p = p[:i]
	}
}

// pathKey identifies a backed-up path (directories lose their trailing
// slash) in the set of paths a Full contained.
func pathKey(p string) uint64 {
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return xxh3.HashString(p)
}

// pathKey2 is the index key of a path: as backed up, without a trailing
// slash.
func pathKey2(p string) string {
	if len(p) > 1 {
		return strings.TrimSuffix(p, "/")
	}
	return p
}

// readDirNoAtime lists dir without changing its atime (which the backup
// set) when the process may.
func readDirNoAtime(dir string) ([]fs.DirEntry, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		return os.ReadDir(dir)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	ents, err := f.ReadDir(-1)
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return ents, err
}

// Inode flags of FS_IOC_GETFLAGS (linux/fs.h), which x/sys does not name.
const (
	fsImmutableFL = 0x10
	fsAppendFL    = 0x20
)

// writable reports why files cannot be made in dir: read-only file system,
// permissions, or an immutable directory (which even root cannot write).
func writable(dir string) error {
	if err := unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK, unix.AT_EACCESS); err != nil {
		return &os.PathError{Op: "access", Path: dir, Err: err}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err == nil && flags&(fsImmutableFL|fsAppendFL) != 0 {
		return &os.PathError{Op: "access", Path: dir, Err: unix.EPERM}
	}
	return nil // no flags on this file system: nothing more to tell
}
