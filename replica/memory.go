package replica

import (
	"context"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/openbrc/brc/bacularec"
)

// MemFile is what a Memory target holds for one path.
type MemFile struct {
	Type   bacularec.FileType
	Stat   bacularec.Stat
	Link   string
	Data   []byte // regular files: the content, holes as zeros
	ACLs   []bacularec.ACL
	Xattrs []bacularec.Xattr
	JobID  uint32
}

// Memory is a Target that keeps everything in memory: for tests of code
// that drives Targets, and as the reference the conformance suite holds
// other targets to. Paths are kept as the backup records them, without a
// trailing slash. It is safe for concurrent use.
type Memory struct {
	mu    sync.Mutex
	files map[string]*MemFile
	jobs  []bacularec.Job // ended jobs, in order
	stats Stats
	job   *bacularec.Job
	// Fail, when set, is called before each operation ("begin", "put",
	// "end") with the path concerned; an error it returns is returned by
	// the operation: fault injection for tests.
	Fail func(op, path string) error
}

// NewMemory returns an empty Memory target.
func NewMemory() *Memory { return &Memory{files: map[string]*MemFile{}} }

func memKey(p string) string {
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return p
}

// Begin implements Target.
func (m *Memory) Begin(ctx context.Context, job *bacularec.Job) error {
	if m.Fail != nil {
		if err := m.Fail("begin", ""); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.job = job
	return ctx.Err()
}

// Put implements Target.
func (m *Memory) Put(ctx context.Context, f *bacularec.File, content Content) error {
	if m.Fail != nil {
		if err := m.Fail("put", f.Path); err != nil {
			drain(content)
			return err
		}
	}
	var data []byte
	var n int64
	if content != nil {
		for {
			off, p, err := content.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if end := off + int64(len(p)); end > int64(len(data)) {
				data = append(data, make([]byte, end-int64(len(data)))...)
			}
			copy(data[off:], p)
			n += int64(len(p))
		}
	}
	if !safePath(f.Path) || f.Type == bacularec.TypeLinkSaved && !safePath(f.Link) {
		m.mu.Lock()
		m.stats.Errors++
		m.mu.Unlock()
		return &FileError{Path: f.Path, Err: ErrUnsafePath}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	key := memKey(f.Path)
	switch f.Type {
	case bacularec.TypeDeleted:
		for k := range m.files {
			if k == key || strings.HasPrefix(k, key+"/") {
				delete(m.files, k)
			}
		}
		m.stats.Deleted++
		m.stats.Files++
		return nil
	case bacularec.TypeLinkSaved:
		first := m.files[memKey(f.Link)]
		if first == nil {
			m.stats.Errors++
			return &FileError{Path: f.Path, Err: ErrLinkTarget}
		}
		m.files[key] = first // the same *MemFile: a hard link
		m.stats.Files++
		return nil
	}
	if f.Type == bacularec.TypeReg || f.Type == bacularec.TypeRegEmpty {
		if int64(len(data)) < f.Stat.Size {
			data = append(data, make([]byte, f.Stat.Size-int64(len(data)))...)
		}
	}
	mf := &MemFile{Type: f.Type, Stat: f.Stat, Link: f.Link, Data: data,
		ACLs: slices.Clone(f.ACLs), Xattrs: slices.Clone(f.Xattrs)}
	if f.Job != nil {
		mf.JobID = f.Job.JobID
	}
	m.files[key] = mf
	m.stats.Files++
	m.stats.Bytes += n
	return nil
}

// End implements Target.
func (m *Memory) End(ctx context.Context, job *bacularec.Job) error {
	if m.Fail != nil {
		if err := m.Fail("end", ""); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs = append(m.jobs, *job)
	m.job = nil
	return nil
}

// Stats implements StatsReporter.
func (m *Memory) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Files returns a copy of what the target holds, by path.
func (m *Memory) Files() map[string]MemFile {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]MemFile, len(m.files))
	for k, f := range m.files {
		out[k] = *f
	}
	return out
}

// Paths returns the paths held, sorted.
func (m *Memory) Paths() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.files))
}

// Jobs returns the jobs ended so far, in order.
func (m *Memory) Jobs() []bacularec.Job {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.jobs)
}

// safePath reports whether p is an absolute path without "." or ".."
// components or NUL: the paths a Target may hold.
func safePath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." || c == "." {
			return false
		}
	}
	return true
}
