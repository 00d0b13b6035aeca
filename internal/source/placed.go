package source

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"

	"github.com/openbrc/brc/bacularec"
)

// Extent is a byte range of a volume file that holds blocks of one job:
// from the job's first block there to the end of its last one. Blocks of
// other jobs may lie in between (concurrent jobs).
type Extent struct {
	Path string `json:"path"`
	// Volume is the labelling the blocks were read under: a volume
	// recycled since has another one, and does not hold the job any more.
	// Zero when the file has no label of its own (a FIFO copy of a stream
	// that had none): only its size is checked then.
	Volume VolumeID `json:"volume"`
	Start  int64    `json:"start"`
	End    int64    `json:"end"`
}

// JobPlace is a job a pass read whole (its start and end labels) and
// where its blocks lie, so that it can be read again later for a target
// that missed it.
type JobPlace struct {
	Session bacularec.SessionKey `json:"session"`
	JobID   uint32               `json:"job_id"`
	Job     string               `json:"job,omitempty"` // Bacula's unique job name (start label)
	Extents []Extent             `json:"extents,omitempty"`
	// Gone says why Extents is empty: no file keeps the job's blocks.
	Gone string `json:"gone,omitempty"`
}

// Placer is implemented by the streams that tell where the jobs of their
// last pass lie (Follow, FIFO).
type Placer interface {
	// Placed returns the jobs the last pass read whole, in the order their
	// start was read: the order the engine sent them in. Call it after
	// Engine.Run returned and before the next Next.
	Placed() []JobPlace
}

var (
	_ Placer = (*Follow)(nil)
	_ Placer = (*FIFO)(nil)
)

// ErrVolumeChanged is returned (wrapped, naming the volume and what
// changed) when a volume file no longer holds the labelling an Extent was
// read under: deleted, recycled, relabelled, replaced or truncated. The
// jobs read from it there are gone from it.
var ErrVolumeChanged = errors.New("source: the volume no longer holds the job")

// CheckExtent reports whether e's volume file still holds what was read
// there: the same labelling, at least up to e.End. Errors other than
// ErrVolumeChanged (permissions, I/O) may pass.
func CheckExtent(e Extent) error {
	fh, err := os.Open(e.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: volume %s (label %q) was deleted", ErrVolumeChanged, e.Path, e.Volume.VolumeName)
		}
		return err
	}
	defer fh.Close()
	return checkOpen(fh, e)
}

// checkOpen is CheckExtent on the open file.
func checkOpen(fh *os.File, e Extent) error {
	fi, err := fh.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < e.End {
		return fmt.Errorf("%w: volume %s (label %q) is %d bytes, the job was read up to offset %d (recycled or truncated)",
			ErrVolumeChanged, e.Path, e.Volume.VolumeName, fi.Size(), e.End)
	}
	if e.Volume == (VolumeID{}) {
		return nil
	}
	id, ready, err := readLabelAt(fh)
	switch {
	case err != nil:
		return fmt.Errorf("%w: volume %s (label %q): its first block is no longer its label: %v", ErrVolumeChanged, e.Path, e.Volume.VolumeName, err)
	case !ready:
		return fmt.Errorf("%w: volume %s (label %q) is being relabelled", ErrVolumeChanged, e.Path, e.Volume.VolumeName)
	case id != e.Volume:
		return fmt.Errorf("%w: volume %s was relabelled (label %q written %d, was %q written %d)",
			ErrVolumeChanged, e.Path, id.VolumeName, id.WriteTime, e.Volume.VolumeName, e.Volume.WriteTime)
	}
	return nil
}

// ReadJobs returns the Source of a pass over the jobs of places, one
// after the other in the order given, each read from its extents: only
// the blocks of its own session, so a job interleaved with others comes
// out alone. Every volume is checked (CheckExtent) when the Source is
// opened and again, on the file read, when the reading reaches it; a
// volume that changed fails the read with ErrVolumeChanged.
func ReadJobs(places []JobPlace, opts ...bacularec.Option) OpenFunc {
	var segs []jobSeg
	for _, p := range places {
		for _, e := range p.Extents {
			segs = append(segs, jobSeg{ext: e, session: p.Session})
		}
	}
	return func(ctx context.Context) (*bacularec.Files, error) {
		for _, s := range segs {
			if err := CheckExtent(s.ext); err != nil {
				return nil, err
			}
		}
		name := "catch-up"
		if len(segs) > 0 {
			name = segs[0].ext.Path
		}
		o := append([]bacularec.Option{bacularec.WithVolumeName(name)}, opts...)
		return bacularec.NewFiles(bacularec.NewReader(&jobReader{ctx: ctx, segs: slices.Clone(segs), off: -1}, o...)), nil
	}
}

type jobSeg struct {
	ext     Extent
	session bacularec.SessionKey
}

// jobReader hands out the blocks of one session within each segment.
type jobReader struct {
	ctx  context.Context
	segs []jobSeg
	fh   *os.File
	path string
	off  int64 // next block in segs[0]; -1: its Start
	blk  []byte
	buf  []byte
	pos  int
}

func (r *jobReader) Read(b []byte) (int, error) {
	for r.pos >= len(r.buf) {
		blk, err := r.next()
		if err != nil {
			return 0, err
		}
		r.buf, r.pos = blk, 0
	}
	n := copy(b, r.buf[r.pos:])
	r.pos += n
	return n, nil
}

// next returns the next block of the current segment's session.
func (r *jobReader) next() ([]byte, error) {
	for len(r.segs) > 0 {
		if err := r.ctx.Err(); err != nil {
			return nil, err
		}
		sg := &r.segs[0]
		if r.fh == nil || r.path != sg.ext.Path {
			if err := r.open(sg.ext); err != nil {
				return nil, err
			}
			r.off = -1
		}
		if r.off < 0 {
			r.off = sg.ext.Start
		}
		if r.off >= sg.ext.End {
			r.segs = r.segs[1:]
			r.off = -1
			continue
		}
		var h [minHeader]byte
		if _, err := r.fh.ReadAt(h[:], r.off); err != nil {
			return nil, r.changed(sg.ext, err)
		}
		n, err := blockLength(h[:])
		if err != nil {
			return nil, r.changed(sg.ext, err)
		}
		if cap(r.blk) < n {
			r.blk = make([]byte, n)
		}
		blk := r.blk[:n] // Read hands a block out whole before the next is read
		if _, err := r.fh.ReadAt(blk, r.off); err != nil {
			return nil, r.changed(sg.ext, err)
		}
		r.off += int64(n)
		v, _, err := headerLen(blk)
		if err != nil || v < 2 || len(blk) < 24 {
			continue
		}
		if (bacularec.SessionKey{ID: be32(blk[16:]), Time: be32(blk[20:])}) == sg.session {
			return blk, nil
		}
	}
	return nil, io.EOF
}

func (r *jobReader) open(e Extent) error {
	if r.fh != nil {
		r.fh.Close()
		r.fh = nil
	}
	fh, err := os.Open(e.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: volume %s (label %q) was deleted", ErrVolumeChanged, e.Path, e.Volume.VolumeName)
		}
		return fmt.Errorf("source: %w", err)
	}
	if err := checkOpen(fh, e); err != nil {
		fh.Close()
		return err
	}
	r.fh, r.path = fh, e.Path
	return nil
}

// changed explains a failure to read again a block read before: the
// volume changed meanwhile (ErrVolumeChanged), or it is damaged there.
func (r *jobReader) changed(e Extent, err error) error {
	if cerr := checkOpen(r.fh, e); cerr != nil {
		return cerr
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("source: volume %s (label %q) at offset %d: %w", e.Path, e.Volume.VolumeName, r.off, err)
}

func (r *jobReader) Close() error {
	if r.fh != nil {
		return r.fh.Close()
	}
	return nil
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// placements follows where the blocks of the jobs being read lie.
type placements struct {
	seq   uint64
	open  map[bacularec.SessionKey]*placing
	ended []*placing // in this pass
}

type placing struct {
	seq       uint64
	place     JobPlace
	untracked string // why the job cannot be placed (BB01)
}

// start: the start label of s was read in the block at [off, end) of path.
func (p *placements) start(s sessionStart, path string, id VolumeID, off, end int64, untracked string) {
	if p.open == nil {
		p.open = map[bacularec.SessionKey]*placing{}
	}
	p.seq++
	p.open[s.key] = &placing{seq: p.seq, untracked: untracked,
		place: JobPlace{Session: s.key, JobID: s.jobID, Job: s.job, Extents: []Extent{{Path: path, Volume: id, Start: off, End: end}}}}
}

// extend: a block of k lies at [off, end) of path.
func (p *placements) extend(k bacularec.SessionKey, path string, id VolumeID, off, end int64) {
	pl := p.open[k]
	if pl == nil {
		return
	}
	ex := pl.place.Extents
	if last := &ex[len(ex)-1]; last.Path == path && last.Volume == id && off >= last.Start {
		last.End = max(last.End, end)
		return
	}
	pl.place.Extents = append(ex, Extent{Path: path, Volume: id, Start: off, End: end})
}

// end: the end label of k was read.
func (p *placements) end(k bacularec.SessionKey) {
	if pl := p.open[k]; pl != nil {
		delete(p.open, k)
		p.ended = append(p.ended, pl)
	}
}

func (p *placements) drop(k bacularec.SessionKey) { delete(p.open, k) }

// list returns copies of the jobs ended in the pass, in start order.
func (p *placements) list() []JobPlace {
	ended := slices.Clone(p.ended)
	slices.SortFunc(ended, func(a, b *placing) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]JobPlace, 0, len(ended))
	for _, pl := range ended {
		jp := pl.place
		jp.Extents = slices.Clone(jp.Extents)
		if pl.untracked != "" {
			jp.Extents, jp.Gone = nil, pl.untracked
		}
		out = append(out, jp)
	}
	return out
}
