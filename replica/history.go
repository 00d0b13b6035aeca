package replica

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/atomicfile"
)

// A Differential job contains everything that changed since the last Full
// of its chain, and, in accurate mode, the deletion of what the Full held
// and is gone; but not the deletion of what an Incremental in between
// added and that is gone again: Bacula's restore of the latest state
// (the Full, the Differential, and the Incrementals after it) never has
// it, while a replica that applied every job in order still would. So each
// target records, per chain (client, fileset and job name), the paths its
// Incremental and Differential jobs wrote since the chain's last Full
// ended OK; at the end of a Differential that ended OK, those it did not
// contain are removed, and the record becomes the Differential's own
// paths (whatever still exists of the earlier ones is in it).

// history is the record of one chain, open for a job.
type history struct {
	path  string
	f     *os.File
	w     *bufio.Writer
	start int64 // the record's size before this job
	err   error
}

// chainFile names the record of job's chain in dir.
func chainFile(dir string, job *bacularec.Job) string {
	h := sha256.Sum256([]byte(job.Client + "\x00" + job.FileSet + "\x00" + job.Name))
	return filepath.Join(dir, "chain-"+hex.EncodeToString(h[:12]))
}

// openHistory starts recording the paths written by job, which is not a
// Full.
func openHistory(dir string, job *bacularec.Job) (*history, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := chainFile(dir, job)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &history{path: p, f: f, w: bufio.NewWriterSize(f, 64<<10), start: end}, nil
}

// add records a backed-up path the job wrote.
func (h *history) add(p string) {
	if h.err == nil && strings.IndexByte(p, 0) < 0 {
		_, h.err = h.w.WriteString(p + "\x00")
	}
}

// close makes what was recorded durable.
func (h *history) close() error {
	err := h.err
	if err == nil {
		err = h.w.Flush()
	}
	if err == nil {
		err = h.f.Sync()
	}
	return errors.Join(err, h.f.Close())
}

// stale returns the recorded paths that seen does not have, deepest
// first, each once.
func (h *history) stale(seen map[uint64]struct{}) ([]string, error) {
	f, err := os.Open(h.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	done := map[uint64]struct{}{}
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		p, err := r.ReadString(0)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		p = p[:len(p)-1]
		k := pathKey(p)
		if _, ok := seen[k]; ok {
			continue
		}
		if _, ok := done[k]; ok {
			continue
		}
		done[k] = struct{}{}
		out = append(out, p)
	}
	depth := func(p string) int { return strings.Count(strings.TrimSuffix(p, "/"), "/") }
	slices.SortStableFunc(out, func(a, b string) int { return depth(b) - depth(a) })
	return out, nil
}

// keepOwn leaves in the record only what this job wrote: after a
// Differential, nothing written before it that still exists is missing
// from it.
func (h *history) keepOwn() error {
	f, err := os.Open(h.path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if h.start > st.Size() {
		return fmt.Errorf("%s: shorter than when the job began", h.path)
	}
	return atomicfile.WriteFrom(h.path, io.NewSectionReader(f, h.start, st.Size()-h.start), 0o600)
}

// forgetChain drops the record of job's chain: a Full ended OK.
func forgetChain(dir string, job *bacularec.Job) error {
	if err := os.Remove(chainFile(dir, job)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
