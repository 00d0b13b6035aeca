package bacularec

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"

	"github.com/zeebo/xxh3"
)

// blockWriter lays records out in blocks the way the storage daemon does:
// one block buffer per session, a record header only where 12 (BB01: 20)
// bytes are free, otherwise the block is flushed and the header starts the
// next block; a split record continues in the session's next block behind a
// {FileIndex, -Stream, bytes still to come} header; session labels are never
// split. Tests use it to re-block the records of real volumes into rare
// layouts (tiny blocks, BB01, BB03, tape padding, interleaved sessions).
type blockWriter struct {
	out     bytes.Buffer
	version int
	size    int // block size, header included
	tapePad int // pad each block with zeros to a multiple of this (0 = none)
	zeroCRC bool
	blocks  map[SessionKey]*wblock
}

type wblock struct {
	sess SessionKey
	num  uint32
	data []byte // records only
}

func newBlockWriter(version, size int) *blockWriter {
	return &blockWriter{version: version, size: size, blocks: make(map[SessionKey]*wblock)}
}

func (w *blockWriter) hdrLen() int {
	switch w.version {
	case 1:
		return bb01HeaderLen
	case 3:
		return bb03HeaderLen
	}
	return bb02HeaderLen
}

func (w *blockWriter) recHdrLen() int {
	if w.version == 1 {
		return bb01RecHdrLen
	}
	return recHeaderLen
}

func (w *blockWriter) block(s SessionKey) *wblock {
	b := w.blocks[s]
	if b == nil {
		b = &wblock{sess: s}
		w.blocks[s] = b
	}
	return b
}

func (w *blockWriter) free(b *wblock) int { return w.size - w.hdrLen() - len(b.data) }

func (w *blockWriter) putHeader(b *wblock, fi, stream int32, n uint32) {
	if w.version == 1 {
		b.data = binary.BigEndian.AppendUint32(b.data, b.sess.ID)
		b.data = binary.BigEndian.AppendUint32(b.data, b.sess.Time)
	}
	b.data = binary.BigEndian.AppendUint32(b.data, uint32(fi))
	b.data = binary.BigEndian.AppendUint32(b.data, uint32(stream))
	b.data = binary.BigEndian.AppendUint32(b.data, n)
}

// write appends one record of session s.
func (w *blockWriter) write(s SessionKey, fi, stream int32, data []byte) {
	b := w.block(s)
	if fi < 0 && w.free(b) < w.recHdrLen()+len(data) {
		w.flush(b) // labels are never split
	}
	if w.free(b) < w.recHdrLen() {
		w.flush(b)
	}
	w.putHeader(b, fi, stream, uint32(len(data)))
	n := min(len(data), w.free(b))
	b.data = append(b.data, data[:n]...)
	data = data[n:]
	for len(data) > 0 {
		w.flush(b)
		w.putHeader(b, fi, -stream, uint32(len(data)))
		n := min(len(data), w.free(b))
		b.data = append(b.data, data[:n]...)
		data = data[n:]
	}
}

// flush writes the session's block out, if it holds anything.
func (w *blockWriter) flush(b *wblock) {
	if len(b.data) == 0 {
		return
	}
	hl := w.hdrLen()
	blk := make([]byte, hl, hl+len(b.data))
	binary.BigEndian.PutUint32(blk[4:], uint32(hl+len(b.data)))
	binary.BigEndian.PutUint32(blk[8:], b.num)
	copy(blk[12:], []byte{'B', 'B', '0', byte('0' + w.version)})
	if w.version >= 2 {
		binary.BigEndian.PutUint32(blk[16:], b.sess.ID)
		binary.BigEndian.PutUint32(blk[20:], b.sess.Time)
	}
	blk = append(blk, b.data...)
	switch {
	case w.version == 3:
		binary.BigEndian.PutUint32(blk[0:], bb03OptChecksum)
		binary.BigEndian.PutUint64(blk[24:], xxh3.Hash(blk))
	case !w.zeroCRC:
		binary.BigEndian.PutUint32(blk[0:], crc32.ChecksumIEEE(blk[4:]))
	}
	w.out.Write(blk)
	if w.tapePad > 0 {
		if r := w.out.Len() % w.tapePad; r != 0 {
			w.out.Write(make([]byte, w.tapePad-r))
		}
	}
	b.num++
	b.data = b.data[:0]
}

// flushAll writes out every session's pending block.
func (w *blockWriter) flushAll() {
	for _, b := range w.blocks {
		w.flush(b)
	}
}

func (w *blockWriter) bytes() []byte {
	w.flushAll()
	return w.out.Bytes()
}

func xxh3Hash(b []byte) uint64 { return xxh3.Hash(b) }
