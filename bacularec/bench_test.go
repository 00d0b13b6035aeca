package bacularec

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// BenchmarkParse measures parse-only throughput of whole volumes through
// Files: blocks, records, attributes, decompression and digest checks. MB/s
// is volume bytes; content-MB/s is decoded file content.
func BenchmarkParse(b *testing.B) {
	for _, name := range []string{fixturePlain, fixtureGzip, "bacula-9.6.7-lzo-md5.vol", "bacula-9.6.7-sparse-md5.vol"} {
		vol, err := os.ReadFile(testdata(b, name))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(vol)))
			b.ReportAllocs()
			var content int64
			for b.Loop() {
				f := NewFiles(NewReader(bytes.NewReader(vol)))
				for {
					it, err := f.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					if it.Kind == KindData {
						content += int64(len(it.Data))
					}
				}
			}
			b.ReportMetric(float64(content)/1e6/b.Elapsed().Seconds(), "content-MB/s")
		})
	}
}
