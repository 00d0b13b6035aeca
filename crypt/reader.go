package crypt

import (
	"fmt"
	"io"
	"math"
)

// NewReader reads the header from r, finds its key in ring and returns
// a reader of the plaintext of the file written for the logical path.
// Header problems are reported here (ErrNotEncrypted, ErrVersion,
// ErrUnknownKey, ErrTruncated); chunk problems by Read (ErrAuth,
// ErrTruncated, ErrTrailingData, wrapped with the chunk number), once
// the plaintext before the bad chunk has been read. No byte of a chunk is
// returned before the whole chunk is authenticated, and io.EOF comes only
// after an authentic final chunk and the end of r. Errors are sticky.
// Memory use is constant (about two chunks).
func NewReader(r io.Reader, ring *Keyring, path string) (io.Reader, error) {
	h, err := readHeader(r)
	if err != nil {
		return nil, err
	}
	key, err := ring.lookup(h.id)
	if err != nil {
		return nil, err
	}
	s, err := newStream(key, h, path)
	if err != nil {
		return nil, err
	}
	return &reader{
		src:    r,
		stream: s,
		enc:    make([]byte, encChunk+1),
		plain:  make([]byte, 0, ChunkSize),
	}, nil
}

type reader struct {
	src io.Reader
	*stream
	counter uint64
	// enc holds a chunk and one byte more: whether that byte exists says
	// whether the chunk is the final one. Its first nenc bytes are already
	// read (the extra byte of the previous chunk).
	enc   []byte
	nenc  int
	plain []byte
	out   []byte // authenticated plaintext not yet returned
	err   error  // sticky, io.EOF after the final chunk
	final bool   // the final chunk was read
}

func (r *reader) Read(p []byte) (int, error) {
	for len(r.out) == 0 && r.err == nil {
		r.err = r.next()
	}
	if len(r.out) == 0 {
		return 0, r.err
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// next reads, authenticates and decrypts one chunk into r.out. It returns
// io.EOF after the final chunk.
func (r *reader) next() error {
	if r.final {
		return io.EOF
	}
	if r.counter == math.MaxUint64 {
		return fmt.Errorf("chunk %d: %w", r.counter, ErrAuth)
	}
	n, err := io.ReadFull(r.src, r.enc[r.nenc:])
	n += r.nenc
	last := false
	switch err {
	case nil:
	case io.EOF, io.ErrUnexpectedEOF:
		last = true
	default:
		return err
	}
	chunk := r.enc[:n]
	if !last {
		chunk = r.enc[:encChunk]
	}
	switch {
	case len(chunk) < tagSize:
		return fmt.Errorf("chunk %d: %w", r.counter, ErrTruncated)
	case len(chunk) == tagSize && r.counter > 0:
		// The writer never ends with an empty chunk after a full one.
		return fmt.Errorf("chunk %d: %w", r.counter, ErrAuth)
	}
	plain, err := r.open(r.plain, chunk, r.counter, last)
	if err != nil {
		return err
	}
	r.out = plain
	r.counter++
	if last {
		// io.EOF is reported once r.out is drained.
		r.final = true
		return nil
	}
	r.enc[0] = r.enc[encChunk]
	r.nenc = 1
	return nil
}
