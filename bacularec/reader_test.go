package bacularec

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Fixture volumes written by real Bacula 9.6.7 (see testdata/MANIFEST.md).
const (
	fixturePlain = "bacula-9.6.7-plain-md5.vol"
	fixtureGzip  = "bacula-9.6.7-gzip-sha1.vol"
)

// testdata returns the path of a fixture volume.
func testdata(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join("testdata", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture %s: %v (made by scripts/lab/mkfixtures.sh)", name, err)
	}
	return p
}

// rec is a record copied out of a Reader.
type rec struct {
	sess     SessionKey
	fi       int32
	stream   int32
	data     []byte
	fragment bool
}

func (r rec) String() string {
	return fmt.Sprintf("{%s fi=%d stream=%d len=%d frag=%v}", r.sess, r.fi, r.stream, len(r.data), r.fragment)
}

func collect(t testing.TB, r *Reader) ([]rec, error) {
	t.Helper()
	recs, _, err := collectNotices(t, r)
	return recs, err
}

// collectNotices is collect that also gathers the reader's notices.
func collectNotices(t testing.TB, r *Reader) ([]rec, []error, error) {
	t.Helper()
	var out []rec
	var notices []error
	for {
		x, err := r.Next()
		notices = append(notices, r.Notices()...)
		if err == io.EOF {
			return out, notices, nil
		}
		if err != nil {
			return out, notices, err
		}
		out = append(out, rec{x.Session(), x.FileIndex, x.Stream, bytes.Clone(x.Data), x.Fragment})
	}
}

func recordsOf(t testing.TB, names ...string) []rec {
	t.Helper()
	var paths []string
	for _, n := range names {
		paths = append(paths, testdata(t, n))
	}
	recs, err := collect(t, NewMultiReader(FileVolumes(paths...)))
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func equalRecs(t *testing.T, got, want []rec) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.sess != w.sess || g.fi != w.fi || g.stream != w.stream || g.fragment != w.fragment || !bytes.Equal(g.data, w.data) {
			t.Fatalf("record %d = %v, want %v", i, g, w)
		}
	}
}

func reblock(recs []rec, version, size int, tweak func(*blockWriter)) []byte {
	w := newBlockWriter(version, size)
	if tweak != nil {
		tweak(w)
	}
	for _, r := range recs {
		w.write(r.sess, r.fi, r.stream, r.data)
	}
	return w.bytes()
}

// Re-blocking real records with every header version and block sizes from
// tiny (records split over hundreds of blocks; headers that do not fit at a
// block's end; headers with 0 data bytes) to Bareos' 1 MiB gives the same
// records back.
func TestReblockRoundTrip(t *testing.T) {
	want := recordsOf(t, fixturePlain)
	for _, v := range []int{1, 2, 3} {
		for _, size := range []int{256, 257, 300, 1000, 4096, 16384, 64512, 1 << 20} {
			t.Run(fmt.Sprintf("BB0%d/%d", v, size), func(t *testing.T) {
				vol := reblock(want, v, size, nil)
				got, err := collect(t, NewReader(bytes.NewReader(vol)))
				if err != nil {
					t.Fatal(err)
				}
				equalRecs(t, got, want)
			})
		}
	}
}

// The writer's corner cases appear in the small layouts: a record header
// that does not fit is written whole at the start of the next block, and a
// header can end a block with no data after it.
func TestReblockCornerCases(t *testing.T) {
	want := recordsOf(t, fixturePlain)
	want = want[:min(len(want), 60)]
	var reheader, zeroData bool
	for size := 256; size < 400 && !(reheader && zeroData); size++ {
		vol := reblock(want, 2, size, nil)
		for off := 0; off < len(vol); {
			n := int(binary.BigEndian.Uint32(vol[off+4:]))
			blk := vol[off : off+n]
			// A block flushed with 1-11 bytes free: the next header did not
			// fit and starts the next block.
			if free := size - n; free > 0 && free < recHeaderLen && off+n < len(vol) {
				reheader = true
			}
			// Walk the block's records.
			for p := bb02HeaderLen; p+recHeaderLen <= n; {
				h := parseRecordHeader(blk[p:])
				p += recHeaderLen
				if p == n && h.Length > 0 {
					zeroData = true
				}
				p += min(int(h.Length), n-p)
			}
			off += n
		}
		got, err := collect(t, NewReader(bytes.NewReader(vol)))
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		equalRecs(t, got, want)
	}
	if !zeroData || !reheader {
		t.Fatalf("layouts not exercised: header with 0 data bytes %v, header moved to the next block %v", zeroData, reheader)
	}
}

func TestTapePadding(t *testing.T) {
	want := recordsOf(t, fixturePlain)
	for _, pad := range []int{1024, 64512} {
		vol := reblock(want, 2, 16384, func(w *blockWriter) { w.tapePad = pad })
		if len(vol)%pad != 0 {
			t.Fatalf("pad %d: volume of %d bytes", pad, len(vol))
		}
		got, err := collect(t, NewReader(bytes.NewReader(vol)))
		if err != nil {
			t.Fatalf("pad %d: %v", pad, err)
		}
		equalRecs(t, got, want)
	}
}

func TestZeroChecksum(t *testing.T) {
	want := recordsOf(t, fixturePlain)
	vol := reblock(want, 2, 64512, func(w *blockWriter) { w.zeroCRC = true })
	got, err := collect(t, NewReader(bytes.NewReader(vol)))
	if err != nil {
		t.Fatal(err)
	}
	equalRecs(t, got, want)
	_, err = collect(t, NewReader(bytes.NewReader(vol), WithStrictChecksum(true)))
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("strict: %v, want ErrChecksum", err)
	}
}

// blocks returns the offsets of the blocks of a BB02 volume.
func blocks(vol []byte) []int {
	var offs []int
	for off := 0; off+bb02HeaderLen <= len(vol); off += int(binary.BigEndian.Uint32(vol[off+4:])) {
		offs = append(offs, off)
	}
	return offs
}

func TestTruncation(t *testing.T) {
	want := recordsOf(t, fixturePlain)
	vol := reblock(want, 2, 4096, nil)
	offs := blocks(vol)
	for i, off := range offs {
		// Cut exactly at a block boundary: a clean end of volume.
		got, err := collect(t, NewReader(bytes.NewReader(vol[:off])))
		if err != nil {
			t.Fatalf("cut at block %d: %v", i, err)
		}
		if len(got) > len(want) {
			t.Fatalf("cut at block %d: %d records", i, len(got))
		}
		// Cut inside the header and inside the data.
		for _, cut := range []int{off + 1, off + 15, off + 23, off + 40} {
			if cut >= len(vol) || (i+1 < len(offs) && cut >= offs[i+1]) {
				continue
			}
			_, err := collect(t, NewReader(bytes.NewReader(vol[:cut]), WithVolumeName("V")))
			var fe *FormatError
			if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.As(err, &fe) || fe.Offset != int64(off) || fe.Volume != "V" {
				t.Fatalf("cut at %d (block %d at %d): %v", cut, i, off, err)
			}
		}
	}
}

func TestCorruptBlocks(t *testing.T) {
	want := recordsOf(t, fixturePlain)
	vol := reblock(want, 2, 4096, nil)
	offs := blocks(vol)
	k := len(offs) / 2
	at := offs[k]
	for _, tc := range []struct {
		name  string
		patch func(b []byte)
		want  error
	}{
		{"checksum", func(b []byte) { b[at+100] ^= 0x40 }, ErrChecksum},
		{"bad id", func(b []byte) { b[at+13] = 'X' }, ErrBlockID},
		{"insane length", func(b []byte) { binary.BigEndian.PutUint32(b[at+4:], 30_000_000) }, ErrBlockLength},
		{"length below header", func(b []byte) { binary.BigEndian.PutUint32(b[at+4:], 10) }, ErrBlockLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(vol)
			tc.patch(b)
			_, err := collect(t, NewReader(bytes.NewReader(b), WithVolumeName("Vol-1")))
			var fe *FormatError
			if !errors.Is(err, tc.want) || !errors.As(err, &fe) || fe.Offset != int64(at) || fe.Volume != "Vol-1" {
				t.Fatalf("got %v, want %v at offset %d", err, tc.want, at)
			}
			if want := binary.BigEndian.Uint32(vol[at+8:]); fe.Block != want {
				t.Fatalf("block %d, want %d", fe.Block, want)
			}
			if fe.Error() == "" || !bytes.Contains([]byte(fe.Error()), []byte("Vol-1")) {
				t.Fatalf("error text %q does not name the volume", fe.Error())
			}
			// Resynchronising skips the damaged block and reads on.
			got, notices, err := collectNotices(t, NewReader(bytes.NewReader(b), WithResync(true)))
			if err != nil {
				t.Fatalf("resync: %v", err)
			}
			if len(notices) == 0 || !errors.Is(notices[0], ErrSkipped) {
				t.Fatalf("resync notices %v", notices)
			}
			// Everything after the damage is read as it was written.
			tail := 10
			if len(got) < tail {
				t.Fatalf("resync read %d records", len(got))
			}
			equalRecs(t, got[len(got)-tail:], want[len(want)-tail:])
		})
	}
}

// Two sessions interleaved block by block, with the same VolSessionId but
// different VolSessionTimes (an SD restart between them), read back apart.
func TestInterleavedSessions(t *testing.T) {
	a := recordsOf(t, fixturePlain)
	b := recordsOf(t, fixtureGzip)
	sa, sb := a[1].sess, SessionKey{ID: a[1].sess.ID, Time: a[1].sess.Time + 1000}
	for i := range b {
		b[i].sess = sb
	}
	w := newBlockWriter(2, 2000)
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		if i < len(a) {
			w.write(a[i].sess, a[i].fi, a[i].stream, a[i].data)
			i++
		}
		if j < len(b) {
			w.write(b[j].sess, b[j].fi, b[j].stream, b[j].data)
			j++
		}
	}
	got, err := collect(t, NewReader(bytes.NewReader(w.bytes())))
	if err != nil {
		t.Fatal(err)
	}
	var ga, gb []rec
	for _, r := range got {
		switch r.sess {
		case sa:
			ga = append(ga, r)
		case sb:
			gb = append(gb, r)
		default:
			t.Fatalf("record of unknown session %v", r)
		}
	}
	// Records complete in block order, so a session's records keep their
	// order; compare per session.
	equalRecs(t, ga, a)
	equalRecs(t, gb, b)

	// And at file level each job's content is intact.
	contentA := contents(t, NewFiles(NewReader(bytes.NewReader(reblock(a, 2, 64512, nil)))))
	contentB := contents(t, NewFiles(NewReader(bytes.NewReader(reblock(b, 2, 64512, nil)))))
	both := contents(t, NewFiles(NewReader(bytes.NewReader(w.bytes()))))
	for k, v := range contentA {
		if both[k] != v {
			t.Fatalf("job A %s: %x, alone %x", k, both[k], v)
		}
	}
	for k, v := range contentB {
		if both[k] != v {
			t.Fatalf("job B %s: %x, alone %x", k, both[k], v)
		}
	}
	if len(both) != len(contentA)+len(contentB) {
		t.Fatalf("%d files, want %d", len(both), len(contentA)+len(contentB))
	}
}

// contents maps "session path" to the sha256 of each regular file's content,
// with holes as zeros up to the file size.
func contents(t testing.TB, f *Files) map[string][32]byte {
	t.Helper()
	type open struct {
		buf []byte
	}
	files := map[*File]*open{}
	out := map[string][32]byte{}
	for {
		it, err := f.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		switch it.Kind {
		case KindFile:
			files[it.File] = &open{}
		case KindData:
			o := files[it.File]
			end := it.Offset + int64(len(it.Data))
			if int64(len(o.buf)) < end {
				o.buf = append(o.buf, make([]byte, end-int64(len(o.buf)))...)
			}
			copy(o.buf[it.Offset:], it.Data)
		case KindFileEnd:
			o := files[it.File]
			delete(files, it.File)
			if it.File.DigestErr != nil {
				t.Errorf("%s: %v", it.File.Path, it.File.DigestErr)
			}
			if it.File.Type != TypeReg && it.File.Type != TypeRegEmpty {
				continue
			}
			if n := it.File.Stat.Size; int64(len(o.buf)) < n {
				o.buf = append(o.buf, make([]byte, n-int64(len(o.buf)))...)
			}
			out[it.File.Job.Session.String()+" "+it.File.Path] = sha256.Sum256(o.buf)
		}
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// A volume that ran out of space in the middle of a block: the partial
// block is dropped with an ErrShortBlock notice, and the whole block comes
// again on the next volume, so no record is lost.
func TestShortBlockAtVolumeEnd(t *testing.T) {
	want := recordsOf(t, fixturePlain)
	vol := reblock(want[1:], 2, 4096, nil) // without the volume label
	offs := blocks(vol)
	k := offs[len(offs)/2]
	next := offs[len(offs)/2+1]
	v1 := bytes.Clone(vol[:k+(next-k)/2])
	lw := newBlockWriter(2, 4096)
	lw.write(want[1].sess, VolLabel, 2, want[0].data)
	v2 := append(lw.bytes(), vol[k:]...)
	mem := func(name string, b []byte) Volume {
		return Volume{Name: name, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
	}
	all, notices, err := collectNotices(t, NewMultiReader([]Volume{mem("V1", v1), mem("V2", v2)}))
	if err != nil {
		t.Fatal(err)
	}
	var got []rec
	for _, x := range all {
		if x.fi != VolLabel {
			got = append(got, x)
		}
	}
	equalRecs(t, got, want[1:])
	var fe *FormatError
	if len(notices) != 1 || !errors.Is(notices[0], ErrShortBlock) || !errors.As(notices[0], &fe) || fe.Volume != "V1" || fe.Offset != int64(k) {
		t.Fatalf("notices %v", notices)
	}
}
