package crypt

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/iotest"
)

func TestReaderAtRandom(t *testing.T) {
	key := newTestKey(t)
	ring := NewKeyring(key)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range testSizes {
		plain := pattern(size)
		ct := encrypt(t, key, "/ra", plain, 0)
		ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), ring, "/ra")
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if ra.Size() != int64(size) {
			t.Fatalf("Size %d, want %d", ra.Size(), size)
		}
		for i := 0; i < 300; i++ {
			off := rng.Int64N(int64(size) + 10)
			n := rng.IntN(3*ChunkSize/2 + 1)
			if i%3 == 0 {
				n = rng.IntN(100)
			}
			p := make([]byte, n)
			got, err := ra.ReadAt(p, off)
			wantN := int(max(0, min(int64(n), int64(size)-off)))
			if got != wantN || !bytes.Equal(p[:got], plain[min(off, int64(size)):min(off, int64(size))+int64(wantN)]) {
				t.Fatalf("size %d ReadAt(%d bytes, %d) = %d, want %d bytes of plaintext", size, n, off, got, wantN)
			}
			if wantN < n && err != io.EOF {
				t.Fatalf("short ReadAt without io.EOF: %v", err)
			}
			if wantN == n && err != nil {
				t.Fatalf("full ReadAt: %v", err)
			}
		}
		if err := iotest.TestReader(io.NewSectionReader(ra, 0, ra.Size()), plain); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if _, err := ra.ReadAt(make([]byte, 1), -1); !errors.Is(err, ErrOffset) {
			t.Fatalf("negative offset: %v", err)
		}
	}
}

// Concurrent ReadAt calls (run with -race) all get the right bytes.
func TestReaderAtConcurrent(t *testing.T) {
	key := newTestKey(t)
	plain := pattern(5*ChunkSize + 77)
	ct := encrypt(t, key, "/c", plain, 0)
	ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), NewKeyring(key), "/c")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for range 50 {
				off := rng.Int64N(int64(len(plain)))
				p := make([]byte, rng.IntN(ChunkSize))
				n, _ := ra.ReadAt(p, off)
				if !bytes.Equal(p[:n], plain[off:off+int64(n)]) {
					t.Errorf("ReadAt(%d) wrong bytes", off)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestReaderAtTruncation(t *testing.T) {
	key := newTestKey(t)
	ring := NewKeyring(key)
	plain := pattern(3 * ChunkSize)
	ct := encrypt(t, key, "/t", plain, 0)
	for k := 0; k < 3; k++ {
		cut := ct[:headerSize+k*encChunk]
		if _, err := NewReaderAt(bytes.NewReader(cut), int64(len(cut)), ring, "/t"); !errors.Is(err, ErrTruncated) {
			t.Errorf("cut after %d chunks: %v", k, err)
		}
	}
	// A size larger than the file: the final chunk cannot be read.
	if _, err := NewReaderAt(bytes.NewReader(ct[:len(ct)-1]), int64(len(ct)), ring, "/t"); !errors.Is(err, ErrTruncated) {
		t.Errorf("file shorter than size: %v", err)
	}
	if _, err := NewReaderAt(bytes.NewReader(ct[:20]), int64(len(ct)), ring, "/t"); !errors.Is(err, ErrTruncated) {
		t.Errorf("file shorter than its header: %v", err)
	}
	// The file shrinks after NewReaderAt: the chunks gone are reported.
	f := &shrinking{b: ct}
	ra, err := NewReaderAt(f, int64(len(ct)), ring, "/t")
	if err != nil {
		t.Fatal(err)
	}
	f.b = ct[:headerSize+encChunk+10]
	p := make([]byte, 2*ChunkSize)
	n, err := ra.ReadAt(p, 0)
	if n != ChunkSize || !bytes.Equal(p[:n], plain[:n]) || !errors.Is(err, ErrTruncated) {
		t.Errorf("shrunk: %d bytes, %v", n, err)
	}
	// A chunk changed after NewReaderAt.
	f.b = flip(ct, headerSize+encChunk+5)
	if n, err := ra.ReadAt(p, ChunkSize); n != 0 || !errors.Is(err, ErrAuth) || errors.Is(err, ErrTruncated) {
		t.Errorf("tampered: %d bytes, %v", n, err)
	}
}

type shrinking struct{ b []byte }

func (s *shrinking) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(s.b).ReadAt(p, off)
}
