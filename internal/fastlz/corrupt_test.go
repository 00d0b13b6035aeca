package fastlz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"testing"
)

// hdr builds a 16-byte fastlzlib block header.
func hdr(typ byte, compressed, original uint32) []byte {
	h := append([]byte("FastLZ\x00"), typ)
	h = binary.LittleEndian.AppendUint32(h, compressed)
	return binary.LittleEndian.AppendUint32(h, original)
}

// blk builds a block header plus data with matching compressed size.
func blk(typ byte, original int, data ...byte) []byte {
	return append(hdr(typ, uint32(len(data)), uint32(original)), data...)
}

var endMarker = hdr(0xC8, 0, 0)

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

func TestHandBuilt(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		c    Codec
		want string
	}{
		{"end marker only", endMarker, FastLZ, ""},
		{"end marker any type", hdr(0x00, 0, 0), FastLZ, ""},
		{"raw", cat(blk(0x18, 3, 'a', 'b', 'c'), endMarker), LZ4, "abc"},
		{"level1 run", cat(blk(0xC8, 9, 0x02, 'a', 'b', 'c', 0x80, 0x02), endMarker), FastLZ, "abcabcabc"},
		// n=7, extra byte 1: length 10, distance 1.
		{"level1 long", cat(blk(0xC8, 11, 0x00, 'z', 0xE0, 0x01, 0x00), endMarker), FastLZ, "zzzzzzzzzzz"},
		// level 2: n=7 with chain 255,0: length 9+255 = 264.
		{"level2 chain", cat(blk(0xC8, 265, 0x20, 'q', 0xE0, 0xFF, 0x00, 0x00), endMarker), FastLZ,
			string(bytes.Repeat([]byte("q"), 265))},
		{"two blocks", cat(blk(0x18, 2, 'h', 'i'), blk(0xC8, 4, 0x00, '!', 0x20, 0x00), endMarker), FastLZ, "hi!!!!"},
		{"lz4 literals", cat(blk(0xC8, 3, 0x30, 'x', 'y', 'z'), endMarker), LZ4, "xyz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeStream(nil, tt.body, tt.c, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLevel2FarMatch(t *testing.T) {
	// 8200 literal bytes (256 runs of 32 + one of 8), then a far match of
	// length 3 at distance 8192+5 = 8197.
	var data []byte
	var want []byte
	for i := 0; i < 8200; i++ {
		want = append(want, byte(i*7+i>>8))
	}
	for i := 0; i < len(want); i += 32 {
		end := min(i+32, len(want))
		data = append(data, byte(end-i-1))
		data = append(data, want[i:end]...)
	}
	data[0] |= 0x20 // level 2
	data = append(data, 1<<5|0x1f, 0xff, 0x00, 0x05)
	want = append(want, want[len(want)-8197:len(want)-8197+3]...)
	got, err := DecodeBlock(nil, data, len(want))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("far match output differs")
	}
	// Distance 8192+8 = 8200 is exactly the start; 8192+9 reaches before it.
	data[len(data)-1] = 0x08
	if _, err := DecodeBlock(nil, data, len(want)); err != nil {
		t.Fatalf("distance to output start: %v", err)
	}
	data[len(data)-1] = 0x09
	if _, err := DecodeBlock(nil, data, len(want)); !errors.Is(err, ErrBadDistance) {
		t.Fatalf("err %v, want ErrBadDistance", err)
	}
	// The same bytes at level 1 are an ordinary match of distance 8192.
	data[0] &^= 0x20
	if _, err := DecodeBlock(nil, data[:len(data)-2], len(want)); err != nil {
		t.Fatalf("level 1 hi=31 lo=255: %v", err)
	}
}

func TestCorrupt(t *testing.T) {
	good := loadRecord(t, "fzfz-text100.rec").body
	mut := func(f func(b []byte) []byte) []byte { return f(slices.Clone(good)) }
	tests := []struct {
		name string
		body []byte
		c    Codec
		max  int
		want error
	}{
		{"empty body", nil, FastLZ, 1 << 20, ErrTruncated},
		{"short header", endMarker[:15], FastLZ, 1 << 20, ErrTruncated},
		{"bad magic", mut(func(b []byte) []byte { b[0] = 'f'; return b }), FastLZ, 1 << 20, ErrBadMagic},
		{"bad magic NUL", mut(func(b []byte) []byte { b[6] = ' '; return b }), FastLZ, 1 << 20, ErrBadMagic},
		{"bad magic end marker", cat(blk(0x18, 1, 'a'), []byte("FastLz\x00\xC8"), make([]byte, 8)), FastLZ, 1 << 20, ErrBadMagic},
		{"type 0x2", mut(func(b []byte) []byte { b[7] = 0x28; return b }), FastLZ, 1 << 20, ErrBadBlockType},
		{"type 0x0", cat(blk(0x08, 1, 'a'), endMarker), FastLZ, 1 << 20, ErrBadBlockType},
		{"type 0xF", cat(blk(0xF8, 1, 'a'), endMarker), LZ4, 1 << 20, ErrBadBlockType},
		{"p=9", mut(func(b []byte) []byte { b[7] = 0xC9; return b }), FastLZ, 1 << 20, ErrTooLarge},
		{"p=15 raw", cat(blk(0x1F, 1, 'a'), endMarker), FastLZ, 1 << 20, ErrTooLarge},
		{"compressed > remaining", mut(func(b []byte) []byte { b[8]++; return b[:len(b)-16] }), FastLZ, 1 << 20, ErrTruncated},
		{"compressed > remaining by 1", cat(hdr(0x18, 3, 3), []byte("ab")), FastLZ, 1 << 20, ErrTruncated},
		{"compressed over limit", cat(hdr(0x18, MaxBlockData+1, 1), make([]byte, MaxBlockData+1), endMarker), FastLZ, 1 << 30, ErrTooLarge},
		{"original over limit", cat(hdr(0xC8, 5, MaxBlockData+1), []byte{0, 'a', 0xE0, 0xff, 0}, endMarker), FastLZ, 1 << 30, ErrTooLarge},
		{"compressed huge", cat(hdr(0xC8, 0xFFFFFFFF, 1), endMarker), LZ4, 1 << 30, ErrTooLarge},
		{"original over max", good, FastLZ, 99, ErrTooLarge},
		{"second block over max", cat(blk(0x18, 2, 'a', 'b'), blk(0x18, 2, 'c', 'd'), endMarker), FastLZ, 3, ErrTooLarge},
		{"negative max", cat(blk(0x18, 1, 'a'), endMarker), FastLZ, -1, ErrTooLarge},
		{"trailing byte", cat(good, []byte{0}), FastLZ, 1 << 20, ErrTrailingData},
		{"trailing end marker", cat(good, endMarker), FastLZ, 1 << 20, ErrTrailingData},
		{"no end marker", good[:len(good)-16], FastLZ, 1 << 20, ErrTruncated},
		{"raw size mismatch", cat(hdr(0x18, 2, 3), []byte("ab"), endMarker), FastLZ, 1 << 20, ErrSizeMismatch},
		{"raw zero original", cat(hdr(0x18, 2, 0), []byte("ab"), endMarker), FastLZ, 1 << 20, ErrSizeMismatch},
		{"fastlz match before start", cat(blk(0xC8, 4, 0x00, 'a', 0x20, 0x01), endMarker), FastLZ, 1 << 20, ErrBadDistance},
		{"fastlz far match before start", cat(blk(0xC8, 4, 0x20, 'a', 0x3f, 0xff, 0, 0), endMarker), FastLZ, 1 << 20, ErrBadDistance},
		{"fastlz short output", cat(blk(0xC8, 3, 0x01, 'a', 'b'), endMarker), FastLZ, 1 << 20, ErrSizeMismatch},
		{"fastlz overrun literal", cat(blk(0xC8, 1, 0x01, 'a', 'b'), endMarker), FastLZ, 1 << 20, ErrSizeMismatch},
		{"fastlz overrun match", cat(blk(0xC8, 3, 0x00, 'a', 0x40, 0x00), endMarker), FastLZ, 1 << 20, ErrSizeMismatch},
		{"fastlz literal truncated", cat(blk(0xC8, 3, 0x02, 'a', 'b'), endMarker), FastLZ, 1 << 20, ErrTruncated},
		{"fastlz distance truncated", cat(blk(0xC8, 4, 0x00, 'a', 0x40), endMarker), FastLZ, 1 << 20, ErrTruncated},
		{"fastlz chain truncated", cat(blk(0xC8, 300, 0x20, 'a', 0xE0, 0xff), endMarker), FastLZ, 1 << 20, ErrTruncated},
		{"fastlz level 3", cat(blk(0xC8, 1, 0x40, 'a'), endMarker), FastLZ, 1 << 20, ErrCorrupt},
		{"fastlz empty data", cat(hdr(0xC8, 0, 5), endMarker), FastLZ, 1 << 20, ErrTruncated},
		{"lz4 empty data", cat(hdr(0xC8, 0, 5), endMarker), LZ4, 1 << 20, ErrSizeMismatch},
		{"lz4 short output", cat(blk(0xC8, 4, 0x30, 'x', 'y', 'z'), endMarker), LZ4, 1 << 20, ErrSizeMismatch},
		{"lz4 overrun", cat(blk(0xC8, 2, 0x30, 'x', 'y', 'z'), endMarker), LZ4, 1 << 20, ErrCorrupt},
		{"lz4 offset before start", cat(blk(0xC8, 20, 0x1f, 'a', 0x05, 0x00, 0x00), endMarker), LZ4, 1 << 20, ErrCorrupt},
		{"unknown codec", good, Codec(0), 1 << 20, ErrUnknownCodec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]byte, 3, 8)
			out, err := DecodeStream(dst, tt.body, tt.c, tt.max)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if len(out) != 3 {
				t.Errorf("on error returned len %d, want dst length 3", len(out))
			}
			if errors.Is(tt.want, io.ErrUnexpectedEOF) != errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("io.ErrUnexpectedEOF wrapping wrong: %v", err)
			}
			t.Log(err)
		})
	}
}

func TestDecodeBlockErrors(t *testing.T) {
	tests := []struct {
		name     string
		src      []byte
		original int
		want     error
	}{
		{"negative original", []byte{0, 'a'}, -1, ErrSizeMismatch},
		{"implausible original", []byte{0, 'a'}, 255*2 + 255, ErrSizeMismatch},
		{"empty", nil, 1, ErrTruncated},
		{"match before start", []byte{0, 'a', 0x20, 0x01}, 4, ErrBadDistance},
		{"level 8", []byte{0xE0, 'a'}, 1, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := DecodeBlock([]byte("keep"), tt.src, tt.original)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if string(out) != "keep" {
				t.Errorf("returned %q on error", out)
			}
		})
	}
	if out, err := DecodeBlock(nil, nil, 0); err != nil || len(out) != 0 {
		t.Errorf("empty block: %q, %v", out, err)
	}
}

// TestTruncation decodes every proper prefix of several bodies (sampled for
// the large ones, always including the neighbourhood of block boundaries):
// each must fail with ErrTruncated (io.ErrUnexpectedEOF).
func TestTruncation(t *testing.T) {
	for _, name := range []string{
		"fzfz-empty.rec", "fzfz-1byte.rec", "fzfz-text100.rec", "fzfz-zero4k.rec",
		"fzfz-fastlz2-zero4k.rec", "fzfz-fastlz2-text64k.rec", "fz4l-text100.rec",
		"fz4h-zero4k.rec", "fz4l-random64k.rec", "synthetic-multiblock-fz4l-text400k.rec",
	} {
		t.Run(name, func(t *testing.T) {
			r := loadRecord(t, name)
			c, _ := codecFor(r.magic)
			body := r.body
			boundaries := []int{0}
			for _, b := range splitBlocks(t, body) {
				boundaries = append(boundaries, b.off, b.off+16, b.off+16+b.compressed)
			}
			boundaries = append(boundaries, len(body)-16)
			try := func(n int) {
				if n < 0 || n >= len(body) {
					return
				}
				// A fresh exact-length copy so any overread would be caught
				// by the race/bounds checks rather than read stale bytes.
				p := slices.Clone(body[:n])
				_, err := DecodeStream(nil, p, c, 1<<20)
				if !errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("prefix %d/%d: err %v, want ErrTruncated", n, len(body), err)
				}
			}
			stride := max(1, len(body)/2000)
			for n := 0; n < len(body); n += stride {
				try(n)
			}
			for _, b := range boundaries {
				for d := -17; d <= 17; d++ {
					try(b + d)
				}
			}
		})
	}
}

// TestFastLZBlockTruncation feeds prefixes of each FastLZ block's data to
// DecodeBlock (all of them for small blocks; sampled, plus the last 64, for
// large ones): all must fail (never panic, never succeed).
func TestFastLZBlockTruncation(t *testing.T) {
	for _, name := range []string{"fzfz-text100.rec", "fzfz-zero4k.rec", "fzfz-fastlz2-zero4k.rec", "fzfz-fastlz2-text64k.rec"} {
		for _, b := range splitBlocks(t, loadRecord(t, name).body) {
			stride := max(1, len(b.data)/3000)
			for n := 0; n < len(b.data); n++ {
				if n%stride != 0 && n < len(b.data)-64 {
					continue
				}
				if _, err := DecodeBlock(nil, slices.Clone(b.data[:n]), b.original); err == nil {
					t.Fatalf("%s: prefix %d of block data decoded without error", name, n)
				}
			}
		}
	}
}

// TestByteFlips flips each byte of small vectors: decoding must not panic,
// must return a sentinel error or output of the announced size, and for
// FastLZ must agree with the reference decoder.
func TestByteFlips(t *testing.T) {
	for _, name := range []string{"fzfz-text100.rec", "fzfz-fastlz2-zero4k.rec", "fz4l-text100.rec", "fz4h-zero4k.rec"} {
		r := loadRecord(t, name)
		c, _ := codecFor(r.magic)
		for i := range r.body {
			for _, x := range []byte{0x01, 0x20, 0x80, 0xff} {
				body := slices.Clone(r.body)
				body[i] ^= x
				out, err := DecodeStream(nil, body, c, 1<<20)
				checkResult(t, body, c, 1<<20, out, err)
			}
		}
	}
}

// checkResult checks invariants of a DecodeStream result on arbitrary
// input, including agreement with the reference FastLZ decoder.
func checkResult(t testing.TB, body []byte, c Codec, max int, out []byte, err error) {
	t.Helper()
	if err != nil {
		if !isSentinel(err) {
			t.Fatalf("error %v wraps no sentinel", err)
		}
		return
	}
	if len(out) > max {
		t.Fatalf("decoded %d bytes, max %d", len(out), max)
	}
	// A successful decode must be a well-formed stream ending in the marker.
	if len(body) < 16 || binary.LittleEndian.Uint64(body[len(body)-8:]) != 0 {
		t.Fatal("success without end marker")
	}
	if c == FastLZ {
		var ref []byte
		for _, b := range splitBlocks(t, body) {
			if b.typ>>4 == typeRaw {
				ref = append(ref, b.data...)
				continue
			}
			d, _, err := refFastLZ(b.data, b.original)
			if err != nil {
				t.Fatalf("decoder accepted block at %d that the reference rejects", b.off)
			}
			ref = append(ref, d...)
		}
		if !bytes.Equal(ref, out) {
			t.Fatal("output differs from reference decoder")
		}
	}
}

var sentinels = []error{
	ErrBadMagic, ErrBadBlockType, ErrTooLarge, ErrTruncated, ErrTrailingData,
	ErrBadDistance, ErrSizeMismatch, ErrCorrupt, ErrUnknownCodec,
}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
