package replica

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/zeebo/blake3"
	"github.com/zeebo/xxh3"

	"github.com/openbrc/brc/bacularec"
)

// ChunkSize is the span of content each hash of an IndexEntry covers. A
// file whose content changed is compared chunk by chunk, and only what
// follows the first changed chunk is written again.
const ChunkSize = 1 << 20

// IndexEntry is what a target's state index remembers of one regular file
// it holds: enough to tell, from a stat alone, that the file is still what
// was written, and what its content was.
type IndexEntry struct {
	Size, Mtime, Ctime int64 // Mtime and Ctime in nanoseconds, as the target's file system says
	Dev, Ino           uint64
	Meta               uint64     // hash of the metadata written (owner, mode, times, ACLs, xattrs)
	Sum                [32]byte   // BLAKE3 over the size and Chunks: identifies the whole content
	Chunks             [][32]byte // BLAKE3 of each ChunkSize span
	JobID              uint32     // job that wrote it last
	Time               int64      // when it was written last (Unix seconds)
}

// Index is a target's state index, by backed-up path. Catalog provides a
// persistent one. Writes may be buffered until Flush.
type Index interface {
	Get(path string) (IndexEntry, bool, error)
	Put(path string, e IndexEntry) error
	Delete(path string) error
	Flush() error
}

var errBadEntry = errors.New("replica: bad index entry")

// MarshalBinary encodes e compactly (version 1).
func (e *IndexEntry) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 80+32*len(e.Chunks))
	b = append(b, 1)
	b = binary.AppendVarint(b, e.Size)
	b = binary.AppendVarint(b, e.Mtime)
	b = binary.AppendVarint(b, e.Ctime)
	b = binary.AppendUvarint(b, e.Dev)
	b = binary.AppendUvarint(b, e.Ino)
	b = binary.LittleEndian.AppendUint64(b, e.Meta)
	b = append(b, e.Sum[:]...)
	b = binary.AppendUvarint(b, uint64(e.JobID))
	b = binary.AppendVarint(b, e.Time)
	b = binary.AppendUvarint(b, uint64(len(e.Chunks)))
	for _, c := range e.Chunks {
		b = append(b, c[:]...)
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary made.
func (e *IndexEntry) UnmarshalBinary(b []byte) error {
	r := bytes.NewReader(b)
	if v, err := r.ReadByte(); err != nil || v != 1 {
		return errBadEntry
	}
	var err error
	vi := func() int64 {
		v, e := binary.ReadVarint(r)
		err = errors.Join(err, e)
		return v
	}
	vu := func() uint64 {
		v, e := binary.ReadUvarint(r)
		err = errors.Join(err, e)
		return v
	}
	e.Size, e.Mtime, e.Ctime = vi(), vi(), vi()
	e.Dev, e.Ino = vu(), vu()
	var m [8]byte
	if _, e2 := r.Read(m[:]); e2 != nil {
		return errBadEntry
	}
	e.Meta = binary.LittleEndian.Uint64(m[:])
	if n, _ := r.Read(e.Sum[:]); n != 32 {
		return errBadEntry
	}
	e.JobID = uint32(vu())
	e.Time = vi()
	n := vu()
	if err != nil || n > uint64(r.Len()/32) {
		return errBadEntry
	}
	e.Chunks = make([][32]byte, n)
	for i := range e.Chunks {
		r.Read(e.Chunks[i][:])
	}
	return nil
}

// metaHash hashes the metadata a mirror writes for f, so that an unchanged
// file whose owner, mode, times, ACLs or xattrs changed gets them again.
func metaHash(f *bacularec.File) uint64 {
	h := xxh3.New()
	var b []byte
	st := &f.Stat
	b = binary.LittleEndian.AppendUint32(b, st.Mode)
	b = binary.LittleEndian.AppendUint32(b, st.UID)
	b = binary.LittleEndian.AppendUint32(b, st.GID)
	b = binary.LittleEndian.AppendUint64(b, uint64(st.Atime))
	b = binary.LittleEndian.AppendUint64(b, uint64(st.Mtime))
	h.Write(b)
	for _, a := range f.ACLs {
		h.Write(binary.LittleEndian.AppendUint32(nil, uint32(a.Stream)))
		h.WriteString(a.Text)
		h.Write([]byte{0})
	}
	for _, x := range f.Xattrs {
		h.WriteString(x.Name)
		h.Write([]byte{0})
		h.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(x.Value))))
		h.Write(x.Value)
	}
	return h.Sum64()
}

// hasher computes the per-chunk BLAKE3 sums of a content stream given in
// order, holes included, and from them the sum of the whole: each byte is
// hashed once.
type hasher struct {
	chunk  *blake3.Hasher
	inCh   int64
	chunks [][32]byte
	pos    int64
}

func newHasher() *hasher { return &hasher{chunk: blake3.New()} }

// Write hashes p after what came before (io.Writer, for reading back).
func (h *hasher) Write(p []byte) (int, error) {
	h.add(p)
	return len(p), nil
}

var zeros [64 << 10]byte

// write hashes p at off; a gap since the last write is hashed as zeros.
func (h *hasher) write(off int64, p []byte) {
	for h.pos < off {
		n := min(off-h.pos, int64(len(zeros)))
		h.add(zeros[:n])
	}
	h.add(p)
}

func (h *hasher) add(p []byte) {
	for len(p) > 0 {
		n := min(int64(len(p)), ChunkSize-h.inCh)
		h.chunk.Write(p[:n])
		h.inCh += n
		h.pos += n
		p = p[n:]
		if h.inCh == ChunkSize {
			h.endChunk()
		}
	}
}

func (h *hasher) endChunk() {
	var s [32]byte
	h.chunk.Sum(s[:0])
	h.chunks = append(h.chunks, s)
	h.chunk.Reset()
	h.inCh = 0
}

// finish pads to size with zeros (a trailing hole) and returns the sums.
func (h *hasher) finish(size int64) (sum [32]byte, chunks [][32]byte) {
	if size > h.pos {
		h.write(size, nil)
	}
	if h.inCh > 0 {
		h.endChunk()
	}
	root := blake3.New()
	root.Write(binary.LittleEndian.AppendUint64(nil, uint64(h.pos)))
	for _, c := range h.chunks {
		root.Write(c[:])
	}
	root.Sum(sum[:0])
	return sum, h.chunks
}
