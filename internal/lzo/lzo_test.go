package lzo

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// raceEnabled is set by race_test.go under -race.
var raceEnabled bool

// vector is one committed test vector: a raw LZO1X block made by liblzo2
// (testdata/gen) and the bytes it must decode to.
type vector struct {
	name string // file name of the .lzo block
	lzo  []byte
	bin  []byte
}

// loadVectors reads every testdata/*.lzo with its .bin: "x-x1.lzo" and
// "x-x999.lzo" both decode to "x.bin".
func loadVectors(t testing.TB) []vector {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*.lzo"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no testdata/*.lzo vectors")
	}
	var vs []vector
	for _, p := range paths {
		base := strings.TrimSuffix(filepath.Base(p), ".lzo")
		i := strings.LastIndexByte(base, '-')
		if i < 0 {
			t.Fatalf("%s: name lacks -x1/-x999 suffix", p)
		}
		z, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join("testdata", base[:i]+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, vector{name: filepath.Base(p), lzo: z, bin: b})
	}
	return vs
}

func findVector(t testing.TB, vs []vector, name string) vector {
	t.Helper()
	for _, v := range vs {
		if v.name == name {
			return v
		}
	}
	t.Fatalf("vector %s not found", name)
	return vector{}
}

// expectedVectors are the inputs testdata/gen/mkvectors.c writes; each has
// an -x1 (lzo1x_1_compress) and an -x999 (lzo1x_999_compress) block.
var expectedVectors = []string{
	"empty", "byte1", "abc", "abcd", "short", "text64k", "random64k",
	"zeros64k", "runs64k", "mixed64k", "far64k", "periodic16k",
}

func TestVectorSetComplete(t *testing.T) {
	vs := loadVectors(t)
	for _, name := range expectedVectors {
		for _, c := range []string{"-x1.lzo", "-x999.lzo"} {
			findVector(t, vs, name+c)
		}
	}
	// Bacula keeps LZO output even when it expands: 64 KiB of random data
	// becomes 65,797 bytes with lzo1x_1_compress.
	if v := findVector(t, vs, "random64k-x1.lzo"); len(v.lzo) != 65797 || len(v.bin) != 65536 {
		t.Errorf("random64k-x1: %d -> %d bytes, want 65536 -> 65797", len(v.bin), len(v.lzo))
	}
}

func TestDecompressVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			// Exact-fit buffer: the limit equals the output size.
			got, err := Decompress(make([]byte, 0, len(v.bin)), v.lzo)
			if err != nil {
				t.Fatalf("Decompress exact fit: %v", err)
			}
			if !bytes.Equal(got, v.bin) {
				t.Fatalf("Decompress exact fit: output differs (got %d bytes, want %d)", len(got), len(v.bin))
			}
			// Roomy, dirty, reused buffer: old contents must not leak.
			buf := bytes.Repeat([]byte{0xA5}, len(v.bin)+100)
			for range 2 {
				got, err = Decompress(buf[:7], v.lzo)
				if err != nil || !bytes.Equal(got, v.bin) {
					t.Fatalf("Decompress roomy buffer: err=%v, equal=%v", err, bytes.Equal(got, v.bin))
				}
			}
			if len(got) > 0 && &got[0] != &buf[0] {
				t.Error("Decompress did not use dst's storage")
			}
			got, err = DecompressN(v.lzo, len(v.bin))
			if err != nil || !bytes.Equal(got, v.bin) {
				t.Fatalf("DecompressN(max=size): err=%v, equal=%v", err, bytes.Equal(got, v.bin))
			}
			got, err = DecompressN(v.lzo, 1<<20)
			if err != nil || !bytes.Equal(got, v.bin) {
				t.Fatalf("DecompressN(max=1MiB): err=%v, equal=%v", err, bytes.Equal(got, v.bin))
			}
			if len(v.bin) > 0 {
				if got, err := Decompress(make([]byte, 0, len(v.bin)-1), v.lzo); err != ErrOutputOverrun || got != nil {
					t.Errorf("Decompress with cap size-1: got %d bytes, err %v; want ErrOutputOverrun", len(got), err)
				}
				if _, err := DecompressN(v.lzo, len(v.bin)-1); err != ErrOutputOverrun {
					t.Errorf("DecompressN(max=size-1): err %v, want ErrOutputOverrun", err)
				}
			}
			ref, err := refDecode(v.lzo, len(v.bin), nil)
			if err != nil || !bytes.Equal(ref, v.bin) {
				t.Fatalf("reference decoder: err=%v, equal=%v", err, bytes.Equal(ref, v.bin))
			}
		})
	}
}

// TestVectorsCoverForms checks that the vectors exercise every instruction
// form of the format, counted by the reference decoder.
func TestVectorsCoverForms(t *testing.T) {
	var total forms
	for _, v := range loadVectors(t) {
		var f forms
		if _, err := refDecode(v.lzo, len(v.bin), &f); err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		total.add(f)
	}
	for _, c := range total.named() {
		t.Logf("%-40s %6d", c.name, c.n)
		if c.n == 0 {
			t.Errorf("no vector uses: %s", c.name)
		}
	}
}

func TestHandMade(t *testing.T) {
	long := func(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	end := []byte{0x11, 0, 0}
	tests := []struct {
		name  string
		src   []byte
		limit int
		want  []byte
		err   error
	}{
		{"nil input", nil, 100, nil, ErrInputOverrun},
		{"end marker only", end, 100, []byte{}, nil},
		{"end marker, zero limit", end, 0, []byte{}, nil},
		{"truncated end marker", []byte{0x11, 0}, 100, nil, ErrInputOverrun},
		{"trailing byte", []byte{0x11, 0, 0, 0}, 100, nil, ErrInputNotConsumed},
		{"no end marker", []byte{0x14, 'a', 'b', 'c'}, 100, nil, ErrInputOverrun},
		{"first-byte literals", cat([]byte{0x14, 'a', 'b', 'c'}, end), 100, []byte("abc"), nil},
		{"first-byte literals over limit", cat([]byte{0x14, 'a', 'b', 'c'}, end), 2, nil, ErrOutputOverrun},
		{"first-byte literals truncated", []byte{0x14, 'a', 'b'}, 100, nil, ErrInputOverrun},
		{"first byte 255", cat([]byte{255}, long(238, 'x'), end), 1000, long(238, 'x'), nil},
		{"literal run 0000LLLL", cat([]byte{0x01, 'a', 'b', 'c', 'd'}, end), 100, []byte("abcd"), nil},
		{"literal run with ext 0 0 1", cat([]byte{0x00, 0, 0, 1}, long(3+15+510+1, 'q'), end), 1000, long(529, 'q'), nil},
		// 'a' then M3 length 3 distance 1 (overlapping).
		{"M3 overlap", cat([]byte{0x12, 'a', 0x21, 0x00, 0x00}, end), 100, []byte("aaaa"), nil},
		// 'a','b' then M1 (state 2): 2 bytes from distance 1.
		{"M1 near", cat([]byte{0x13, 'a', 'b', 0x00, 0x00}, end), 100, []byte("abbb"), nil},
		// M1 near with S=2 trailing literals.
		{"M1 near + 2 literals", cat([]byte{0x13, 'a', 'b', 0x02, 0x00, 'y', 'z'}, end), 100, []byte("abbbyz"), nil},
		// M2 01LDDDSS: length 4, distance 3, S=1.
		{"M2", cat([]byte{0x14, 'a', 'b', 'c', 0x60 | 2<<2 | 1, 0x00, '!'}, end), 100, []byte("abcabca!"), nil},
		// M3 with ext: length 31+1+2 = 34 from distance 1.
		{"M3 ext", cat([]byte{0x12, 'z', 0x20, 0x01, 0x00, 0x00}, end), 100, long(35, 'z'), nil},
		{"M3 ext over limit", cat([]byte{0x12, 'z', 0x20, 0x01, 0x00, 0x00}, end), 34, nil, ErrOutputOverrun},
		{"M3 ext truncated", []byte{0x12, 'z', 0x20, 0x00, 0x00}, 10000, nil, ErrInputOverrun},
		{"M3 lookbehind", cat([]byte{0x12, 'z', 0x21, 0x04, 0x00}, end), 100, nil, ErrLookBehind},
		{"M2 lookbehind", cat([]byte{0x12, 'z', 0x40 | 1<<2, 0x00}, end), 100, nil, ErrLookBehind},
		{"M1 lookbehind", cat([]byte{0x12, 'z', 0x04, 0x00}, end), 100, nil, ErrLookBehind},
		{"M1 far lookbehind", cat([]byte{0x15, 'a', 'b', 'c', 'd', 0x00, 0x00}, end), 100, nil, ErrLookBehind},
		{"M4 lookbehind", cat([]byte{0x15, 'a', 'b', 'c', 'd', 0x11, 0x04, 0x00}, end), 100, nil, ErrLookBehind},
		// Only M4 (16..17) can start a block as a match; 18+ are literals.
		{"M4 at start", cat([]byte{0x11, 0x04, 0x00}, end), 100, nil, ErrLookBehind},
		{"first byte 33 is a literal run", cat([]byte{0x21}, long(16, '.'), end), 100, long(16, '.'), nil},
		{"trailing literals truncated", []byte{0x12, 'a', 0x21, 0x03, 0x00, 'x', 'y'}, 100, nil, ErrInputOverrun},
		{"trailing literals over limit", cat([]byte{0x12, 'a', 0x21, 0x03, 0x00, 'x', 'y', 'z'}, end), 5, nil, ErrOutputOverrun},
		{"huge zero-length ext", cat([]byte{0x00}, long(100000, 0), []byte{1, 'x'}), 1 << 20, nil, ErrOutputOverrun},
		// Error codes for blocks with several defects follow liblzo2's
		// observed choices (checked against lzo1x_decompress_safe).
		{"ext ends the input, output checked first", cat([]byte{0x00}, long(100, 0), []byte{1}), 100, nil, ErrOutputOverrun},
		{"short ext ends the input", []byte{0x12, 'a', 0x21, 0x00, 0x00, 0x00, 0xae}, 100, nil, ErrInputOverrun},
		{"literal opcode ends the input", []byte{0x12, 'a', 0x21, 0x00, 0x00, 0x06}, 5, nil, ErrInputOverrun},
		{"literal opcode + 1 byte", []byte{0x12, 'a', 0x21, 0x00, 0x00, 0x06, 'l'}, 5, nil, ErrInputOverrun},
		{"literal opcode + 2 bytes", []byte{0x12, 'a', 0x21, 0x00, 0x00, 0x06, 'l', 'm'}, 5, nil, ErrOutputOverrun},
		{"M2 distance ends the input", []byte{0x14, 'a', 'b', 'c', 0x63, 0x6a}, 100, nil, ErrInputOverrun},
		{"M4 distance ends the input", []byte{0x14, 'a', 'b', 'c', 0x11, 0x00, 0xdf}, 100, nil, ErrLookBehind},
		// The end marker is any M4 with distance 16384, as in liblzo2.
		{"end marker with S bits", []byte{0x11, 0x03, 0x00}, 100, []byte{}, nil},
		{"end marker with ext length", []byte{0x10, 0x05, 0x00, 0x00}, 0, []byte{}, nil},
		{"end marker with zero ext", []byte{0x10, 0x00, 0x20, 0x00, 0x00}, 0, []byte{}, nil},
		{"zero-length ext runs off input", cat([]byte{0x00}, long(1000, 0)), 1 << 20, nil, ErrInputOverrun},
		// A run of 0x10 opcodes (M4, L=0) whose zero extension never ends.
		{"M4 ext runs off input", cat([]byte{0x12, 'a', 0x10}, long(50, 0)), 1 << 20, nil, ErrInputOverrun},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decompress(make([]byte, 0, tc.limit), tc.src)
			if err != tc.err {
				t.Fatalf("Decompress error = %v, want %v", err, tc.err)
			}
			if err == nil && !bytes.Equal(got, tc.want) {
				t.Fatalf("Decompress = %q, want %q", got, tc.want)
			}
			if err != nil && got != nil {
				t.Fatalf("Decompress returned %d bytes with error", len(got))
			}
			ref, rerr := refDecode(tc.src, tc.limit, nil)
			if rerr != tc.err || (rerr == nil && !bytes.Equal(ref, tc.want)) {
				t.Fatalf("refDecode = %q, %v; want %q, %v", ref, rerr, tc.want, tc.err)
			}
			got, err = DecompressN(tc.src, tc.limit)
			if err != tc.err || (err == nil && !bytes.Equal(got, tc.want)) {
				t.Fatalf("DecompressN = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestErrorsMatchCorrupt(t *testing.T) {
	for _, err := range []error{ErrInputOverrun, ErrLookBehind, ErrInputNotConsumed} {
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%v does not match ErrCorrupt", err)
		}
		if !strings.HasPrefix(err.Error(), "lzo: ") {
			t.Errorf("%q lacks the lzo: prefix", err)
		}
	}
	if errors.Is(ErrOutputOverrun, ErrCorrupt) {
		t.Error("ErrOutputOverrun matches ErrCorrupt")
	}
}

// TestDecompressNGrows decodes a 1 MiB run from a 4 KiB block, which needs
// DecompressN to grow its buffer past the initial estimate.
func TestDecompressNGrows(t *testing.T) {
	const size = 1 << 20
	// 'r', then M3 distance 1, length 31+ext+2 = size-1, then the end marker.
	ext := size - 1 - 2 - 31
	src := []byte{0x12, 'r', 0x20}
	for ; ext > 255; ext -= 255 {
		src = append(src, 0)
	}
	src = append(src, byte(ext), 0, 0, 0x11, 0, 0)
	want := bytes.Repeat([]byte{'r'}, size)
	for _, max := range []int{size, size + 1, 3 * size} {
		got, err := DecompressN(src, max)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("DecompressN(max=%d): err=%v, %d bytes", max, err, len(got))
		}
	}
	for _, max := range []int{size - 1, 100, 0, -1} {
		if _, err := DecompressN(src, max); err != ErrOutputOverrun {
			t.Fatalf("DecompressN(max=%d): err=%v, want ErrOutputOverrun", max, err)
		}
	}
}

// TestTruncation checks that every proper prefix of several vectors fails
// with ErrInputOverrun (never a panic or a silently short result), and that
// a trailing byte after the end marker is rejected. Under -race or -short,
// blocks longer than 4 KiB test every prefix of their first 2 KiB and last
// 128 bytes and every 97th one in between.
func TestTruncation(t *testing.T) {
	vs := loadVectors(t)
	names := []string{
		"empty-x1.lzo", "byte1-x1.lzo", "abc-x999.lzo", "short-x1.lzo", "short-x999.lzo",
		"text64k-x1.lzo", "text64k-x999.lzo", "zeros64k-x1.lzo", "runs64k-x999.lzo",
		"periodic16k-x1.lzo", "periodic16k-x999.lzo", "mixed64k-x999.lzo",
	}
	sample := testing.Short() || raceEnabled
	for _, name := range names {
		v := findVector(t, vs, name)
		buf := make([]byte, 0, len(v.bin))
		for n := 0; n < len(v.lzo); n++ {
			if sample && len(v.lzo) > 4096 && n > 2048 && n < len(v.lzo)-128 && n%97 != 0 {
				continue
			}
			got, err := Decompress(buf, v.lzo[:n])
			if err != ErrInputOverrun || got != nil {
				t.Fatalf("%s[:%d]: got %d bytes, err %v; want ErrInputOverrun", name, n, len(got), err)
			}
		}
		src := append(slices.Clone(v.lzo), 0)
		if _, err := Decompress(buf, src); err != ErrInputNotConsumed {
			t.Fatalf("%s + 1 byte: err %v, want ErrInputNotConsumed", name, err)
		}
	}
}

// TestCorruption flips random bits and overwrites random bytes (including
// distance bytes) in the vectors. Results must match the reference decoder
// exactly, and any output must stay within the limit.
func TestCorruption(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	iters := 300
	if testing.Short() || raceEnabled {
		iters = 30
	}
	var nerr, nok int
	for _, v := range loadVectors(t) {
		limit := len(v.bin) + 64
		buf := make([]byte, 0, limit)
		for i := range iters {
			src := slices.Clone(v.lzo)
			for range 1 + rng.IntN(3) {
				p := rng.IntN(len(src))
				if i%2 == 0 {
					src[p] ^= 1 << rng.IntN(8)
				} else {
					src[p] = byte(rng.Uint32())
				}
			}
			checkAgainstRef(t, src, buf, limit)
			if _, err := Decompress(buf, src); err != nil {
				nerr++
			} else {
				nok++
			}
		}
	}
	t.Logf("corrupted blocks: %d rejected, %d decoded", nerr, nok)
}

// checkAgainstRef decodes src with Decompress (buffer buf, limit cap(buf)),
// DecompressN and refDecode, and requires identical results.
func checkAgainstRef(t *testing.T, src, buf []byte, limit int) {
	t.Helper()
	got, err := Decompress(buf[:0:limit], src)
	if err == nil && len(got) > limit {
		t.Fatalf("output %d bytes exceeds limit %d", len(got), limit)
	}
	if err != nil && got != nil {
		t.Fatalf("returned %d bytes with error %v", len(got), err)
	}
	ref, rerr := refDecode(src, limit, nil)
	if err != rerr || !bytes.Equal(got, ref) {
		t.Fatalf("Decompress = %d bytes, %v; refDecode = %d bytes, %v (src %x)", len(got), err, len(ref), rerr, truncHex(src))
	}
	gotN, errN := DecompressN(src, limit)
	if errN != err || !bytes.Equal(gotN, got) {
		t.Fatalf("DecompressN = %d bytes, %v; Decompress = %d bytes, %v", len(gotN), errN, len(got), err)
	}
}

func truncHex(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

func TestDecompressNoAllocs(t *testing.T) {
	v := findVector(t, loadVectors(t), "text64k-x1.lzo")
	buf := make([]byte, 0, len(v.bin))
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := Decompress(buf, v.lzo); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Decompress allocates %v times per call, want 0", allocs)
	}
}

func FuzzDecompress(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	seeds := 0
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("testdata", e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		seeds++
	}
	if seeds == 0 {
		f.Fatal("no fuzz seeds in testdata")
	}
	const max = 70000
	buf := make([]byte, 0, max)
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) <= 4096 {
			// Small inputs: full differential check against refDecode and
			// DecompressN, with a roomy and a small (ErrOutputOverrun) limit.
			checkAgainstRef(t, src, buf, max)
			checkAgainstRef(t, src, buf, 100)
			return
		}
		// Large inputs (the 64 KiB seeds and their mutants): only the
		// fast decoder, so each run and the fuzzer's input minimisation,
		// which reruns the target once per input byte, stay quick.
		for _, limit := range []int{max, 1000} {
			got, err := Decompress(buf[:0:limit], src)
			if err == nil && len(got) > limit {
				t.Fatalf("output %d bytes exceeds limit %d", len(got), limit)
			}
			if err != nil && got != nil {
				t.Fatalf("returned %d bytes with error %v", len(got), err)
			}
		}
	})
}

func BenchmarkDecompress(b *testing.B) {
	vs := loadVectors(b)
	for _, name := range []string{
		"text64k-x1.lzo", "text64k-x999.lzo", "mixed64k-x1.lzo", "random64k-x1.lzo",
		"zeros64k-x1.lzo", "runs64k-x1.lzo", "far64k-x999.lzo", "periodic16k-x999.lzo",
	} {
		v := findVector(b, vs, name)
		b.Run(strings.TrimSuffix(name, ".lzo"), func(b *testing.B) {
			buf := make([]byte, 0, 65536)
			b.SetBytes(int64(len(v.bin)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decompress(buf, v.lzo); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
