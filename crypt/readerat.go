package crypt

import (
	"fmt"
	"io"
	"sync"
)

// ReaderAt gives random access to the plaintext of an encrypted file.
// Safe for concurrent use, as io.ReaderAt requires.
type ReaderAt struct {
	src    io.ReaderAt
	stream *stream
	size   int64 // plaintext
	chunks int64

	pool sync.Pool // *chunkBuf

	// The last chunk decrypted, so that reads smaller than a chunk in
	// sequence do not decrypt it again for each read.
	mu        sync.Mutex
	cacheIdx  int64
	cacheBuf  *chunkBuf
	cacheData []byte
}

// NewReaderAt reads the header of the size-byte encrypted file in r,
// finds its key in ring and authenticates the final chunk, which proves
// the plaintext size derived from size: a file cut at a chunk boundary
// fails here with ErrTruncated, any other wrong size with ErrAuth. The
// other chunks are authenticated by ReadAt when read.
func NewReaderAt(r io.ReaderAt, size int64, ring *Keyring, path string) (*ReaderAt, error) {
	var raw [headerSize]byte
	hl := int(min(headerSize, max(size, 0)))
	n, err := r.ReadAt(raw[:hl], 0)
	if n < hl {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("%w: file shorter than its size", ErrTruncated)
		}
		return nil, err
	}
	h, err := parseHeader(raw[:n])
	if err != nil {
		return nil, err
	}
	key, err := ring.lookup(h.id)
	if err != nil {
		return nil, err
	}
	plain, err := PlaintextSize(size)
	if err != nil {
		return nil, err
	}
	s, err := newStream(key, h, path)
	if err != nil {
		return nil, err
	}
	ra := &ReaderAt{
		src:      r,
		stream:   s,
		size:     plain,
		chunks:   max(1, (plain+ChunkSize-1)/ChunkSize),
		cacheIdx: -1,
	}
	ra.pool.New = func() any { return new(chunkBuf) }
	buf := ra.pool.Get().(*chunkBuf)
	data, err := ra.decrypt(ra.chunks-1, buf)
	if err != nil {
		return nil, err
	}
	ra.cacheIdx, ra.cacheBuf, ra.cacheData = ra.chunks-1, buf, data
	return ra, nil
}

// Size returns the plaintext size.
func (ra *ReaderAt) Size() int64 { return ra.size }

// ReadAt reads plaintext at off, decrypting only the chunks it needs
// (ErrAuth, ErrTruncated when the file shrank since NewReaderAt). As
// io.ReaderAt requires, it returns io.EOF when fewer than len(p) bytes
// are left at off.
func (ra *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, ErrOffset
	}
	n := 0
	for n < len(p) && off < ra.size {
		idx, lo := off/ChunkSize, int(off%ChunkSize)
		c, err := ra.copyChunk(p[n:], idx, lo)
		n += c
		off += int64(c)
		if err != nil {
			return n, err
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// copyChunk copies plaintext of chunk idx from offset lo into p.
func (ra *ReaderAt) copyChunk(p []byte, idx int64, lo int) (int, error) {
	ra.mu.Lock()
	if ra.cacheIdx == idx {
		n := copy(p, ra.cacheData[lo:])
		ra.mu.Unlock()
		return n, nil
	}
	ra.mu.Unlock()
	buf := ra.pool.Get().(*chunkBuf)
	data, err := ra.decrypt(idx, buf)
	if err != nil {
		ra.pool.Put(buf)
		return 0, err
	}
	n := copy(p, data[lo:])
	ra.mu.Lock()
	old := ra.cacheBuf
	ra.cacheIdx, ra.cacheBuf, ra.cacheData = idx, buf, data
	ra.mu.Unlock()
	if old != nil {
		ra.pool.Put(old)
	}
	return n, nil
}

// chunkBuf holds one chunk, encrypted and decrypted. Not decrypted in
// place: a failed Open clears its output, and stream.open may need the
// ciphertext again to try the other finality.
type chunkBuf struct {
	enc   [encChunk]byte
	plain [ChunkSize]byte
}

// decrypt reads chunk idx into buf and decrypts it.
func (ra *ReaderAt) decrypt(idx int64, buf *chunkBuf) ([]byte, error) {
	last := idx == ra.chunks-1
	clen := int64(encChunk)
	if last {
		clen = ra.size - idx*ChunkSize + tagSize
	}
	enc := buf.enc[:clen]
	n, err := ra.src.ReadAt(enc, headerSize+idx*encChunk)
	if n < len(enc) {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("chunk %d: %w", idx, ErrTruncated)
		}
		return nil, err
	}
	return ra.stream.open(buf.plain[:0], enc, uint64(idx), last)
}
