package crypt

import (
	"bytes"
	"io"
	"testing"
)

const benchSize = 16 << 20

func BenchmarkEncrypt(b *testing.B) { benchEncrypt(b, benchSize) }

// A small file: what the bench tree's 20,000 files mostly are, where the
// cost of a writer's set-up shows.
func BenchmarkEncryptSmall(b *testing.B) { benchEncrypt(b, 4<<10) }

// benchEncrypt encrypts size bytes with a new writer per iteration.
func benchEncrypt(b *testing.B, size int) {
	key := newTestKey(b)
	plain := pattern(size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		w, err := NewWriter(io.Discard, key, "/bench")
		if err != nil {
			b.Fatal(err)
		}
		w.Write(plain)
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	key := newTestKey(b)
	ring := NewKeyring(key)
	ct := encrypt(b, key, "/bench", pattern(benchSize), 0)
	buf := make([]byte, 128<<10)
	b.SetBytes(benchSize)
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(ct), ring, "/bench")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, r, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReaderAt(b *testing.B) {
	key := newTestKey(b)
	ct := encrypt(b, key, "/bench", pattern(benchSize), 0)
	ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), NewKeyring(key), "/bench")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(benchSize)
	for b.Loop() {
		for off := int64(0); off < benchSize; off += int64(len(buf)) {
			if _, err := ra.ReadAt(buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
	}
}
