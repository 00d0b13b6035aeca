package crypt

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
)

// newTestKey returns a throwaway random key.
func newTestKey(t testing.TB) Key {
	t.Helper()
	var k Key
	rand.Read(k[:])
	return k
}

// pattern returns n deterministic, non-repeating-looking bytes.
func pattern(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// encrypt writes plain in writes of step bytes (all at once if step <= 0).
func encrypt(t testing.TB, key Key, path string, plain []byte, step int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, key, path)
	if err != nil {
		t.Fatal(err)
	}
	if step <= 0 {
		step = max(1, len(plain))
	}
	for p := plain; len(p) > 0; {
		n := min(step, len(p))
		if m, err := w.Write(p[:n]); err != nil || m != n {
			t.Fatalf("Write: %d, %v", m, err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := int64(buf.Len()), EncryptedSize(int64(len(plain))); got != want {
		t.Fatalf("encrypted %d bytes to %d, EncryptedSize says %d", len(plain), got, want)
	}
	return buf.Bytes()
}

func decrypt(ring *Keyring, path string, ct []byte) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(ct), ring, path)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

var testSizes = []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3*ChunkSize + 1234}

func TestRoundTrip(t *testing.T) {
	key := newTestKey(t)
	ring := NewKeyring(key)
	const path = "/srv/data/file.bin"
	for _, size := range testSizes {
		plain := pattern(size)
		var first []byte
		for _, step := range []int{1, 7, 4096, ChunkSize, 0} {
			if step == 1 && size > 2*ChunkSize {
				continue // slow under -race, and 7 covers odd steps
			}
			t.Run(fmt.Sprintf("size%d/write%d", size, step), func(t *testing.T) {
				ct := encrypt(t, key, path, plain, step)
				if first == nil {
					first = ct
				} else if len(ct) != len(first) || bytes.Equal(ct, first) {
					t.Fatal("two encryptions of the same plaintext must differ (fresh salt) but have the same size")
				}
				got, err := decrypt(ring, path, ct)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, plain) {
					t.Fatalf("decrypted %d bytes, differ from the %d written", len(got), len(plain))
				}
				if p, err := PlaintextSize(int64(len(ct))); err != nil || p != int64(size) {
					t.Fatalf("PlaintextSize(%d) = %d, %v; want %d", len(ct), p, err, size)
				}
			})
		}
		ct := encrypt(t, key, path, plain, 0)
		readers := map[string]func(io.Reader) io.Reader{
			"OneByte": iotest.OneByteReader,
			"Half":    iotest.HalfReader,
			"DataErr": iotest.DataErrReader,
		}
		for name, wrap := range readers {
			t.Run(fmt.Sprintf("size%d/src%s", size, name), func(t *testing.T) {
				r, err := NewReader(wrap(bytes.NewReader(ct)), ring, path)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("got %d bytes, %v", len(got), err)
				}
			})
		}
		t.Run(fmt.Sprintf("size%d/readsteps", size), func(t *testing.T) {
			for _, step := range []int{1, 7, 4096, ChunkSize + 3} {
				if step == 1 && size > 2*ChunkSize {
					continue
				}
				r, err := NewReader(bytes.NewReader(ct), ring, path)
				if err != nil {
					t.Fatal(err)
				}
				var got []byte
				buf := make([]byte, step)
				for {
					n, err := r.Read(buf)
					got = append(got, buf[:n]...)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				if !bytes.Equal(got, plain) {
					t.Fatalf("read step %d: got %d bytes", step, len(got))
				}
			}
		})
		t.Run(fmt.Sprintf("size%d/iotest", size), func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(ct), ring, path)
			if err != nil {
				t.Fatal(err)
			}
			if err := iotest.TestReader(r, plain); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWriterClose(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, newTestKey(t), "/x")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if buf.Len() != headerSize+tagSize {
		t.Fatalf("empty file is %d bytes", buf.Len())
	}
}

// A failing destination is reported and sticks.
func TestWriterError(t *testing.T) {
	boom := errors.New("boom")
	if _, err := NewWriter(failWriter{boom}, newTestKey(t), "/x"); err != boom {
		t.Fatalf("header write: %v", err)
	}
	var lw limitWriter
	lw.n, lw.err = headerSize, boom
	w, err := NewWriter(&lw, newTestKey(t), "/x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, ChunkSize+1)); err != boom {
		t.Fatalf("Write: %v", err)
	}
	if _, err := w.Write([]byte{1}); err != boom {
		t.Fatalf("Write after error: %v", err)
	}
	if err := w.Close(); err != boom {
		t.Fatalf("Close after error: %v", err)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

type limitWriter struct {
	n   int
	err error
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, l.err
	}
	l.n -= len(p)
	return len(p), nil
}

func TestSizes(t *testing.T) {
	for _, p := range []int64{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 5 * ChunkSize, 1 << 40} {
		e := EncryptedSize(p)
		if got, err := PlaintextSize(e); err != nil || got != p {
			t.Errorf("PlaintextSize(EncryptedSize(%d)=%d) = %d, %v", p, e, got, err)
		}
	}
	if EncryptedSize(-1) != -1 {
		t.Error("EncryptedSize(-1)")
	}
	if EncryptedSize(0) != 63 || EncryptedSize(ChunkSize) != 47+ChunkSize+16 || EncryptedSize(ChunkSize+1) != 47+ChunkSize+1+32 {
		t.Error("EncryptedSize formula")
	}
	for _, e := range []int64{-1, 0, 46, 47, 62} {
		if _, err := PlaintextSize(e); !errors.Is(err, ErrTruncated) {
			t.Errorf("PlaintextSize(%d): %v, want ErrTruncated", e, err)
		}
	}
	// A final chunk shorter than a tag, or empty after a full chunk, cannot be.
	for _, e := range []int64{47 + encChunk + 1, 47 + encChunk + 15, 47 + encChunk + 16} {
		if _, err := PlaintextSize(e); !errors.Is(err, ErrAuth) || errors.Is(err, ErrTruncated) {
			t.Errorf("PlaintextSize(%d): %v, want ErrAuth", e, err)
		}
	}
}

func TestErrorsMatchAuth(t *testing.T) {
	for _, err := range []error{ErrTruncated, ErrTrailingData, fmt.Errorf("chunk 3: %w", ErrTruncated)} {
		if !errors.Is(err, ErrAuth) {
			t.Errorf("%v does not match ErrAuth", err)
		}
	}
	if errors.Is(ErrAuth, ErrTruncated) || errors.Is(ErrTruncated, ErrTrailingData) {
		t.Error("ErrAuth is not a truncation, nor a truncation trailing data")
	}
}
