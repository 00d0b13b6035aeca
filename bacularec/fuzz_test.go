package bacularec

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds returns small volumes made from the fixtures: the first records
// of each, re-blocked into small blocks so that a few KiB exercise labels,
// attributes, split records and every data stream the fixture has.
func fuzzSeeds(f *testing.F) [][]byte {
	vols, _ := filepath.Glob(filepath.Join("testdata", "*.vol"))
	var seeds [][]byte
	for _, v := range vols {
		recs, err := collect(f, NewReader(mustOpen(f, v)))
		if err != nil {
			f.Fatalf("%s: %v", v, err)
		}
		// Keep labels and a few small records of each stream type.
		var keep []rec
		seen := map[int32]int{}
		for _, r := range recs {
			if r.fi < 0 || (len(r.data) < 300 && seen[r.stream] < 2) {
				keep = append(keep, r)
				seen[r.stream]++
			}
		}
		seeds = append(seeds, reblock(keep, 2, 512, nil))
	}
	if len(seeds) == 0 {
		f.Fatal("no fuzz seeds: testdata/*.vol missing")
	}
	return seeds
}

func mustOpen(f testing.TB, p string) io.Reader {
	b, err := os.ReadFile(p)
	if err != nil {
		f.Fatal(err)
	}
	return bytes.NewReader(b)
}

// FuzzFiles runs arbitrary bytes through the whole stack: blocks, records,
// labels, attributes, decompression, digests, ACLs and xattrs. It must
// never panic, and offsets handed out must only grow.
func FuzzFiles(f *testing.F) {
	for i, s := range fuzzSeeds(f) {
		f.Add(s, false, i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, vol []byte, resync, ahead bool) {
		fs := NewFiles(NewReader(bytes.NewReader(vol), WithResync(resync)))
		if ahead {
			fs.SetDecoders(2)
			defer fs.Close()
		}
		next := map[*File]int64{}
		for i := 0; i < 100000; i++ {
			it, err := fs.Next()
			if err != nil {
				if _, err2 := fs.Next(); err2 != err {
					t.Fatalf("error not sticky: %v then %v", err, err2)
				}
				return
			}
			if it.Kind == KindData {
				if it.Offset < next[it.File] {
					t.Fatalf("offset %d after %d", it.Offset, next[it.File])
				}
				next[it.File] = it.Offset + int64(len(it.Data))
			}
		}
	})
}

// FuzzReader checks the record layer alone: never panic, records bounded.
func FuzzReader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, vol []byte) {
		r := NewReader(bytes.NewReader(vol), WithResync(true))
		for {
			x, err := r.Next()
			if err != nil {
				return
			}
			if len(x.Data) > MaxRecordLength {
				t.Fatalf("record of %d bytes", len(x.Data))
			}
		}
	})
}

// FuzzAttributes checks the attributes decoder, seeded with real records.
func FuzzAttributes(f *testing.F) {
	vols, _ := filepath.Glob(filepath.Join("testdata", "*.vol"))
	n := 0
	for _, v := range vols {
		recs, err := collect(f, NewReader(mustOpen(f, v)))
		if err != nil {
			f.Fatal(err)
		}
		for _, r := range recs {
			if r.stream == StreamUnixAttributes && n < 200 {
				f.Add(r.data)
				n++
			}
		}
	}
	if n == 0 {
		f.Fatal("no attributes records in testdata")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseAttributes(data)
		if err != nil {
			return
		}
		if file.Path == "" {
			t.Fatal("empty path accepted")
		}
		// Encoding the stat back gives the same values.
		st := file.Stat
		_ = st.FileMode()
	})
}
