//go:build linux

package extract

import (
	"crypto/rand"
	"fmt"
	"os"
	"testing"

	"github.com/openbrc/brc/bacularec"
)

// Run with TMPDIR on a tmpfs to measure the Writer rather than the disk.

// benchFiles writes n files of size bytes in 64 KiB pieces (the size of a
// Bacula data record) and reports the throughput.
func benchFiles(b *testing.B, size int, data []byte, noZeroSkip bool) {
	const piece = 64 << 10
	dir := b.TempDir()
	files := make([]bacularec.File, 64)
	for i := range files {
		files[i] = bacularec.File{Type: bacularec.TypeReg, Path: fmt.Sprintf("/d%d/f%d", i%8, i),
			Stat: bacularec.Stat{Mode: 0o100644, Size: int64(size), Mtime: 1}}
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	var w *Writer
	for i := 0; i < b.N; i++ {
		if i%len(files) == 0 {
			if w != nil {
				w.Close()
				b.StopTimer()
				os.RemoveAll(dir + "/batch") // keep memory (tmpfs) and disk use flat
				b.StartTimer()
			}
			var err error
			if w, err = New(dir+"/batch", Options{}); err != nil {
				b.Fatal(err)
			}
			w.noZeroSkip = noZeroSkip
		}
		f := &files[i%len(files)]
		it := bacularec.Item{Kind: bacularec.KindFile, File: f}
		if err := w.Apply(&it); err != nil {
			b.Fatal(err)
		}
		it.Kind = bacularec.KindData
		for off := 0; off < size; off += piece {
			it.Offset, it.Data = int64(off), data[off:min(off+piece, size)]
			if err := w.Apply(&it); err != nil {
				b.Fatal(err)
			}
		}
		it.Kind, it.Data = bacularec.KindFileEnd, nil
		if err := w.Apply(&it); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	w.Close()
}

func BenchmarkWrite(b *testing.B) {
	const size = 4 << 20
	random := make([]byte, size)
	rand.Read(random)
	zeros := make([]byte, size)
	for _, c := range []struct {
		name string
		data []byte
		skip bool
	}{
		{"random/zeroskip", random, false},
		{"random/plain", random, true},
		{"zeros/zeroskip", zeros, false},
		{"zeros/plain", zeros, true},
	} {
		b.Run(c.name, func(b *testing.B) { benchFiles(b, size, c.data, c.skip) })
	}
}

func BenchmarkSmallFiles(b *testing.B) {
	data := make([]byte, 2048)
	rand.Read(data)
	b.Run("2KiB", func(b *testing.B) { benchFiles(b, len(data), data, false) })
	b.Run("empty", func(b *testing.B) { benchFiles(b, 0, nil, false) })
}
