package replica

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/extract"
)

// What the Encrypt wrapper needs of the target it wraps, beyond Target.
// The Mirror implements them; a target without them is still encrypted,
// but without skip_unchanged and verification (see EncryptOptions).
type (
	// logicalPather gives the logical path a backed-up path is encrypted
	// for: where the file lies under the target root, with a leading "/".
	logicalPather interface {
		logicalPath(p string) (string, bool)
	}
	// targetOpener opens the regular file the target holds at a backed-up
	// path, for reading, never following a symbolic link.
	targetOpener interface {
		openTarget(p string) (*os.File, error)
	}
	// committer tells how many finished files wait to be put in place,
	// and puts them in place now.
	committer interface {
		pendingFiles() int
		commitPending()
	}
	// keeper is what the encrypted index needs of the Mirror: a stat of
	// the file at a backed-up path, a file known unchanged kept without
	// its content, and the Mirror's index updates seen (tapIndex).
	keeper interface {
		Target
		statTarget(p string) (extract.Info, error)
		keepUnchanged(ctx context.Context, f *bacularec.File, metaSame bool) error
		tapIndex(wrap func(Index) Index)
	}
)

// logicalPath implements logicalPather: the backed-up path after
// StripPrefix, cleaned the way the Mirror lays it out under its root
// ("/srv/./a//b" with strip_prefix /srv is ROOT/a/b: "/a/b"). It is what
// crypt.DecryptTree finds the file at: "/" + its path under the root.
func (m *Mirror) logicalPath(p string) (string, bool) {
	return cleanLogical(extract.StripPrefix(p, m.opt.StripPrefix))
}

// openTarget implements targetOpener, between Begin and End.
func (m *Mirror) openTarget(p string) (*os.File, error) {
	if m.w == nil {
		return nil, ErrClosed
	}
	return m.w.Open(p)
}

// statTarget implements keeper: what is at backed-up path p, not
// following a symbolic link, between Begin and End.
func (m *Mirror) statTarget(p string) (extract.Info, error) {
	if m.w == nil {
		return extract.Info{}, ErrClosed
	}
	return m.w.Stat(p)
}

// keepUnchanged implements keeper: Put for the regular file f when the
// caller (Encrypt, with its own index) knows the target holds its content
// already, so that the content is neither given nor read. As when Put's
// comparison finds a file unchanged, it is counted skipped, its metadata
// applied when metaSame is false (the index entry, if it still describes
// the file, refreshed with the new stat), and it counts as contained in a
// Full for DeleteRemoved.
func (m *Mirror) keepUnchanged(ctx context.Context, f *bacularec.File, metaSame bool) error {
	if m.w == nil {
		return ErrClosed
	}
	m.contains(f)
	if m.reserved(f.Path) {
		m.stats.Errors++
		return &FileError{Path: f.Path, Err: fmt.Errorf("%w: %s is reserved for previous versions", ErrUnsafePath, VersionsDir)}
	}
	m.stats.Skipped++
	var err error
	if !metaSame {
		if m.opt.Index != nil {
			info, serr := m.w.Stat(f.Path)
			e, ok, gerr := m.opt.Index.Get(pathKey2(f.Path))
			if serr == nil && gerr == nil && ok && e.Size == info.Size && e.Mtime == info.Mtime &&
				e.Ctime == info.Ctime && e.Ino == info.Ino && e.Dev == info.Dev {
				m.written[f] = &writtenFile{sum: e.Sum, chunks: e.Chunks}
			}
		}
		if err = m.w.SetMeta(f); err != nil {
			delete(m.written, f)
		}
	}
	if err == nil {
		m.stats.Files++
	}
	return m.finishPut(ctx, f, err)
}

// tapIndex implements keeper: the Mirror's index (MirrorOptions.Index,
// possibly nil) becomes wrap's, before Begin.
func (m *Mirror) tapIndex(wrap func(Index) Index) { m.opt.Index = wrap(m.opt.Index) }

// pendingFiles implements committer.
func (m *Mirror) pendingFiles() int {
	if m.w == nil {
		return 0
	}
	return m.w.Pending()
}

// cleanLogical returns "/" and the components of p other than empty ones
// and ".", joined with "/"; false for a path with ".." or NUL, which no
// target accepts.
func cleanLogical(p string) (string, bool) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(p) + 1)
	for c := range strings.SplitSeq(p, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return "", false
		}
		b.WriteByte('/')
		b.WriteString(c)
	}
	if b.Len() == 0 {
		return "/", true
	}
	return b.String(), true
}
