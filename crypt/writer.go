package crypt

import (
	"crypto/rand"
	"errors"
	"io"
	"math"
	"sync"
)

// writeBufs holds the buffers of closed writers for the next ones: with
// a writer per file, allocating (and zeroing) two chunks for each cost
// more than encrypting the data when most files are small.
var writeBufs = sync.Pool{New: func() any {
	return &writeBuf{plain: make([]byte, 0, ChunkSize), enc: make([]byte, 0, encChunk)}
}}

type writeBuf struct{ plain, enc []byte }

// NewWriter writes the header to w at once and returns a writer that
// encrypts what is written to it for the logical path (see the package
// documentation), under key with a fresh random salt. Chunks go to w as
// they fill; Close seals the final chunk and must be called, or the file
// will not decrypt (ErrTruncated). Close does not close w. Memory use is
// constant. After an error every call returns it.
func NewWriter(w io.Writer, key Key, path string) (io.WriteCloser, error) {
	salt := make([]byte, saltSize)
	rand.Read(salt) // never fails: crypto/rand crashes the program instead
	return newWriter(w, key, path, salt)
}

// newWriter is NewWriter with a chosen salt, for the test vectors: reusing
// a salt with the same key and different content would break security.
func newWriter(w io.Writer, key Key, path string, salt []byte) (*writer, error) {
	h := newHeader(key.ID(), salt)
	s, err := newStream(&key, h, path)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(h.raw[:]); err != nil {
		return nil, err
	}
	b := writeBufs.Get().(*writeBuf)
	return &writer{dst: w, stream: s, bufs: b, buf: b.plain[:0], enc: b.enc[:0]}, nil
}

type writer struct {
	dst io.Writer
	*stream
	counter uint64
	bufs    *writeBuf // holds buf and enc, back to writeBufs at Close
	buf     []byte    // plaintext of the current chunk
	enc     []byte
	err     error
	closed  bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, ErrClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		// A full chunk is sealed only once more data comes, as it is the
		// final one otherwise.
		if len(w.buf) == ChunkSize {
			if err := w.seal(false); err != nil {
				return n, err
			}
		}
		c := copy(w.buf[len(w.buf):ChunkSize], p)
		w.buf = w.buf[:len(w.buf)+c]
		p = p[c:]
		n += c
	}
	return n, nil
}

func (w *writer) seal(last bool) error {
	if w.counter == math.MaxUint64 {
		w.err = errors.New("crypt: file too large")
		return w.err
	}
	var nb [12]byte
	w.enc = w.aead.Seal(w.enc[:0], nonce(&nb, w.counter, last), w.buf, w.ad)
	clear(w.buf)
	w.buf = w.buf[:0]
	w.counter++
	if _, err := w.dst.Write(w.enc); err != nil {
		w.err = err
		return err
	}
	return nil
}

// Close seals the final chunk (empty only when nothing was written). A
// second Close returns the result of the first; Write after Close returns
// ErrClosed.
func (w *writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err == nil {
		w.seal(true) // sets w.err when it fails
	}
	clear(w.buf) // no plaintext kept: seal cleared it, unless it failed
	w.bufs.plain, w.bufs.enc = w.buf[:0], w.enc[:0]
	writeBufs.Put(w.bufs)
	w.bufs, w.buf, w.enc = nil, nil, nil
	return w.err
}
