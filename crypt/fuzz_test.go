package crypt

import (
	"bytes"
	"encoding/hex"
	"io"
	"testing"
)

// FuzzReader feeds mutated ciphertexts to NewReader and NewReaderAt. They
// must not panic, and may only succeed on an unmodified seed, giving its
// plaintext: any change to a valid file is detected.
func FuzzReader(f *testing.F) {
	key, _ := ParseKey(testKeyHex)
	ring := NewKeyring(key)
	const path = "/fuzz/file"
	valid := map[string][]byte{} // ciphertext -> plaintext
	for i, size := range []int{0, 1, 16, 100, 1000, ChunkSize, ChunkSize + 1} {
		plain := pattern(size)
		var buf bytes.Buffer
		w, err := newWriter(&buf, key, path, bytes.Repeat([]byte{byte(i)}, saltSize))
		if err != nil {
			f.Fatal(err)
		}
		w.Write(plain)
		w.Close()
		valid[buf.String()] = plain
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, ct []byte) {
		want, ok := valid[string(ct)]
		r, err := NewReader(bytes.NewReader(ct), ring, path)
		var got []byte
		if err == nil {
			got, err = io.ReadAll(r)
			if err != nil && (len(got)%ChunkSize != 0 || len(got) >= len(ct)) {
				t.Fatalf("%d bytes released before %v", len(got), err)
			}
		}
		if (err == nil) != ok {
			t.Fatalf("Reader: valid seed %v, error %v, input %s", ok, err, hex.EncodeToString(ct[:min(len(ct), 80)]))
		}
		if ok && !bytes.Equal(got, want) {
			t.Fatal("Reader: wrong plaintext")
		}
		ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), ring, path)
		if err == nil {
			got = make([]byte, ra.Size())
			var n int
			n, err = ra.ReadAt(got, 0)
			if n == len(got) && err == io.EOF {
				err = nil
			}
		}
		if (err == nil) != ok {
			t.Fatalf("ReaderAt: valid seed %v, error %v", ok, err)
		}
		if ok && !bytes.Equal(got, want) {
			t.Fatal("ReaderAt: wrong plaintext")
		}
		if p, err := PlaintextSize(int64(len(ct))); err == nil && EncryptedSize(p) != int64(len(ct)) {
			t.Fatalf("PlaintextSize(%d) = %d, EncryptedSize of it %d", len(ct), p, EncryptedSize(p))
		}
	})
}
