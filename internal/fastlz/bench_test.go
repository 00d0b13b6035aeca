package fastlz

import "testing"

// BenchmarkDecodeStream reports decoded MB/s (b.SetBytes = output size)
// with a reused output buffer.
func BenchmarkDecodeStream(b *testing.B) {
	for _, name := range []string{
		"fzfz-text64k.rec", "fzfz-fastlz2-text64k.rec", "fz4l-text64k.rec", "fz4h-text64k.rec", "fz4l-text256k.rec",
	} {
		b.Run(name, func(b *testing.B) {
			r := loadRecord(b, name)
			c, _ := codecFor(r.magic)
			want := len(readFile(b, vectorInputs[name]))
			dst := make([]byte, 0, want)
			b.SetBytes(int64(want))
			b.ReportAllocs()
			for b.Loop() {
				out, err := DecodeStream(dst[:0], r.body, c, BlockSize)
				if err != nil || len(out) != want {
					b.Fatal(err)
				}
			}
		})
	}
}
