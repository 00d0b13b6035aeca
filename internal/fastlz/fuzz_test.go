package fastlz

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// fuzzMax bounds the output of fuzzed decodes.
const fuzzMax = 1 << 20

// FuzzDecodeStream decodes arbitrary bodies with an arbitrary codec and
// checks the result invariants (and, for FastLZ, agreement with the
// reference decoder).
func FuzzDecodeStream(f *testing.F) {
	n := 0
	for _, name := range recFiles(f) {
		r := loadRecord(f, name)
		c, ok := codecFor(r.magic)
		if !ok || len(r.body) > seedLimit {
			continue // small seeds keep minimization (and the corpus) fast
		}
		f.Add(r.body, byte(c))
		n++
	}
	for _, s := range fastLZSeedBlocks(f) {
		f.Add(cat(blk(0xC8, s.original, s.data...), endMarker), byte(FastLZ))
	}
	f.Add(cat(blk(0xC8, 9, 0x02, 'a', 'b', 'c', 0x80, 0x02), endMarker), byte(FastLZ))
	f.Add(cat(blk(0x18, 2, 'h', 'i'), blk(0xC8, 3, 0x30, 'x', 'y', 'z'), endMarker), byte(LZ4))
	if n == 0 {
		f.Fatal("no seed vectors in " + vecDir)
	}
	f.Fuzz(func(t *testing.T, body []byte, codec byte) {
		c := Codec(codec % 3) // includes the invalid Codec(0)
		prefix := []byte{1, 2, 3}
		out, err := DecodeStream(slices.Clone(prefix), body, c, fuzzMax)
		if !bytes.Equal(out[:min(len(out), 3)], prefix) || len(out) < 3 {
			t.Fatalf("dst prefix not preserved: %q", out)
		}
		if err != nil && len(out) != 3 {
			t.Fatalf("error with %d output bytes", len(out)-3)
		}
		checkResult(t, body, c, fuzzMax, out[3:], err)
		if err == nil && len(out) > 3 {
			// The same input one byte under the output limit must fail
			// with ErrTooLarge.
			if _, err := DecodeStream(nil, body, c, len(out)-4); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("max=%d: err %v, want ErrTooLarge", len(out)-4, err)
			}
		}
	})
}

// FuzzFastLZBlock decodes arbitrary FastLZ block data and compares
// DecodeBlock with the reference decoder.
func FuzzFastLZBlock(f *testing.F) {
	for _, s := range fastLZSeedBlocks(f) { // fails if the vectors are missing
		f.Add(s.data, uint32(s.original))
	}
	f.Add([]byte{0x02, 'a', 'b', 'c', 0x80, 0x02}, uint32(9))
	f.Add([]byte{0x20, 'q', 0xE0, 0xFF, 0x00, 0x00}, uint32(265))
	f.Fuzz(func(t *testing.T, src []byte, original uint32) {
		orig := int(original % (MaxBlockData + 1))
		got, err := DecodeBlock(nil, src, orig)
		want, _, refErr := refFastLZ(src, orig)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("DecodeBlock err %v, reference err %v", err, refErr)
		}
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			if len(got) != 0 {
				t.Fatalf("error with %d output bytes", len(got))
			}
			return
		}
		if len(got) != orig || !bytes.Equal(got, want) {
			t.Fatalf("output differs from reference (%d vs %d bytes)", len(got), len(want))
		}
	})
}

// seedLimit caps seed sizes: the fuzzer minimizes every new interesting
// input (quadratic in its size, up to -fuzzminimizetime, default 60s),
// which stalls fuzzing when seeds are large.
const seedLimit = 512

// farSeed is a compact level-2 block with a 255-chain and a far match:
// literal 'a', a distance-1 match of 9+33*255+0 = 8424 bytes, literals
// "bcd", then a far match of length 3 at distance 8192+5.
func farSeed() rawBlock {
	data := []byte{0x20, 'a', 0xE0}
	for range 33 {
		data = append(data, 0xFF)
	}
	data = append(data, 0x00, 0x00, 0x02, 'b', 'c', 'd', 0x3F, 0xFF, 0x00, 0x05)
	return rawBlock{typ: 0xC8, data: data, compressed: len(data), original: 1 + 8424 + 3 + 3}
}

// fastLZSeedBlocks returns farSeed and the FastLZ blocks of the FZFZ
// vectors, each cut at the last instruction boundary within seedLimit
// bytes.
func fastLZSeedBlocks(tb testing.TB) []rawBlock {
	seeds := []rawBlock{farSeed()}
	for _, name := range recFiles(tb) {
		r := loadRecord(tb, name)
		if r.magic != magicFZFZ {
			continue
		}
		for _, b := range splitBlocks(tb, r.body) {
			if b.typ>>4 != typeComp {
				continue
			}
			b.data, b.original = cutFastLZ(b.data, seedLimit)
			seeds = append(seeds, b)
		}
	}
	if len(seeds) == 1 {
		tb.Fatal("no FastLZ seed blocks in " + vecDir)
	}
	for i, s := range seeds {
		if _, _, err := refFastLZ(s.data, s.original); err != nil {
			tb.Fatalf("seed block %d invalid: %v", i, err)
		}
		if _, err := DecodeBlock(nil, s.data, s.original); err != nil {
			tb.Fatalf("seed block %d: %v", i, err)
		}
	}
	if _, st, _ := refFastLZ(seeds[0].data, seeds[0].original); st.far != 1 || st.chain != 1 {
		tb.Fatalf("far seed: %+v", st)
	}
	return seeds
}

// cutFastLZ walks the instructions of a valid FastLZ block and returns its
// longest instruction-aligned prefix of at most limit bytes together with
// that prefix's decoded length.
func cutFastLZ(src []byte, limit int) ([]byte, int) {
	level2 := src[0]>>5 == 1
	cut, outLen := 0, 0
	i, out := 0, 0
	for i < len(src) {
		c := int(src[i])
		if i == 0 {
			c &= 0x1f
		}
		i++
		if c < 32 {
			i += c + 1
			out += c + 1
		} else {
			length := c>>5 + 2
			if c>>5 == 7 {
				for {
					e := int(src[i])
					i++
					length += e
					if !level2 || e != 255 {
						break
					}
				}
			}
			lo := int(src[i])
			i++
			if level2 && c&31 == 31 && lo == 255 {
				i += 2
			}
			out += length
		}
		if i > limit {
			break
		}
		cut, outLen = i, out
	}
	return src[:cut], outLen
}
