package bacularec

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// synthVolume writes a one-job volume: label, SOS, the given files (each an
// attributes record, then its records), EOS.
type synthFile struct {
	path    string
	typ     FileType
	size    int64
	records []synthRec
}

type synthRec struct {
	stream int32
	data   []byte
}

func attrRecord(fi int32, f synthFile, dataStream int32) []byte {
	stat := "A A IGk B A A A " + EncodeBase64Int(f.size) + " A A A A A A A " + EncodeBase64Int(int64(dataStream))
	return []byte(strings.Join([]string{strconv.Itoa(int(fi)) + " " + strconv.Itoa(int(f.typ)) + " " + f.path, stat, "", "", "0", ""}, "\x00"))
}

func synthVolume(blockSize int, files ...synthFile) []byte {
	now := time.Unix(1795749354, 0)
	sess := SessionKey{3, 1795749354}
	w := newBlockWriter(2, blockSize)
	w.write(sess, VolLabel, 0, volLabelData(BaculaID, 11, "Synth-0001", now))
	w.flushAll()
	w.write(sess, SOSLabel, 9, sessionLabelData(BaculaID, 11, 9, false, 0, now))
	for i, f := range files {
		fi := int32(i + 1)
		ds := int32(StreamFileData)
		if len(f.records) > 0 {
			ds = f.records[0].stream
		}
		w.write(sess, fi, StreamUnixAttributes, attrRecord(fi, f, ds))
		for _, r := range f.records {
			w.write(sess, fi, r.stream, r.data)
		}
	}
	w.write(sess, EOSLabel, 9, sessionLabelData(BaculaID, 11, 9, true, 'T', now))
	return w.bytes()
}

func compHeader(magic uint32, body []byte) []byte {
	h := binary.BigEndian.AppendUint32(nil, magic)
	h = binary.BigEndian.AppendUint32(h, uint32(len(body)))
	h = binary.BigEndian.AppendUint16(h, 0)
	h = binary.BigEndian.AppendUint16(h, 1)
	return append(h, body...)
}

func readAll(t *testing.T, vol []byte) (map[string][]byte, map[string]*File, []Item) {
	t.Helper()
	fs := NewFiles(NewReader(bytes.NewReader(vol)))
	content := map[string][]byte{}
	files := map[string]*File{}
	var others []Item
	for {
		it, err := fs.Next()
		if err == io.EOF {
			return content, files, others
		}
		if err != nil {
			t.Fatal(err)
		}
		switch it.Kind {
		case KindData:
			b := content[it.File.Path]
			if n := it.Offset + int64(len(it.Data)); int64(len(b)) < n {
				b = append(b, make([]byte, n-int64(len(b)))...)
			}
			copy(b[it.Offset:], it.Data)
			content[it.File.Path] = b
		case KindFileEnd:
			files[it.File.Path] = it.File
		case KindRaw, KindNotice:
			c := *it
			c.Data = bytes.Clone(it.Data)
			others = append(others, c)
		}
	}
}

// Bacula 15 writes zstd frames behind the "LZOY" magic in streams 29 and 30.
func TestZstdRecords(t *testing.T) {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	text := bytes.Repeat([]byte("zstd record from Bacula 15 "), 3000)
	sum := md5.Sum(append(append([]byte(nil), text...), text[:1000]...))
	sparse := binary.BigEndian.AppendUint64(nil, 1<<20)
	vol := synthVolume(64512,
		synthFile{path: "/z/plain", typ: TypeReg, size: int64(len(text) + 1000), records: []synthRec{
			{StreamCompressedData, compHeader(MagicZstd, enc.EncodeAll(text, nil))},
			{StreamCompressedData, compHeader(MagicZstd, enc.EncodeAll(text[:1000], nil))},
			{StreamMD5Digest, sum[:]},
		}},
		synthFile{path: "/z/sparse", typ: TypeReg, size: 1<<20 + 100, records: []synthRec{
			{StreamSparseCompressed, append(sparse, compHeader(MagicZstd, enc.EncodeAll(text[:100], nil))...)},
		}},
	)
	content, files, others := readAll(t, vol)
	if !bytes.Equal(content["/z/plain"], append(append([]byte(nil), text...), text[:1000]...)) {
		t.Fatalf("plain: %d bytes", len(content["/z/plain"]))
	}
	if f := files["/z/plain"]; !f.DigestChecked || f.DigestErr != nil || f.DataStream != StreamCompressedData {
		t.Fatalf("plain file %+v", f)
	}
	if got := content["/z/sparse"]; len(got) != 1<<20+100 || !bytes.Equal(got[1<<20:], text[:100]) {
		t.Fatalf("sparse: %d bytes", len(got))
	}
	if len(others) != 0 {
		t.Fatalf("unexpected items %v", others)
	}
}

// Compression headers that do not add up are errors naming the file.
func TestBadCompressedRecords(t *testing.T) {
	good := compHeader(MagicLZO, []byte{0x11, 0, 0})
	for name, tc := range map[string]struct {
		rec  []byte
		want error
	}{
		"unknown magic":  {compHeader(0x41424344, []byte{1, 2, 3}), ErrUnknownCodec},
		"bad version":    {append(append(good[:10:10], 0, 2), good[12:]...), ErrCompression},
		"length differs": {append(bytes.Clone(good), 0), ErrCompression},
		"short header":   {good[:8], ErrCompression},
		"corrupt lzo":    {compHeader(MagicLZO, []byte{0xff, 0xff, 0xff, 0xff}), ErrCompression},
		"corrupt zlib":   {compHeader(MagicGzip, []byte{0x78, 0x9c, 0xff}), ErrCompression},
	} {
		vol := synthVolume(64512, synthFile{path: "/bad", typ: TypeReg, size: 10, records: []synthRec{{StreamCompressedData, tc.rec}}})
		fs := NewFiles(NewReader(bytes.NewReader(vol), WithVolumeName("V")))
		var err error
		for err == nil {
			_, err = fs.Next()
		}
		var fe *FormatError
		if !errors.Is(err, tc.want) || !errors.As(err, &fe) || fe.Volume != "V" || !strings.Contains(err.Error(), "/bad") {
			t.Errorf("%s: %v, want %v naming the volume and the file", name, err, tc.want)
		}
	}
}

// Encrypted, Win32 and plugin streams are not decoded: their records come
// out as KindRaw items, are counted in File.NotDecoded, and never vanish.
func TestStreamsNotDecoded(t *testing.T) {
	enc := bytes.Repeat([]byte{0xAB}, 5000)
	vol := synthVolume(4096,
		synthFile{path: "/secret", typ: TypeReg, size: 10000, records: []synthRec{
			{22, []byte("session key")}, {20, enc}, {20, enc[:100]},
		}},
		synthFile{path: "/win", typ: TypeReg, size: 300, records: []synthRec{{11, make([]byte, 300)}}},
		synthFile{path: "/fork", typ: TypeReg, size: 5, records: []synthRec{{StreamFileData, []byte("hello")}, {13, []byte("fork")}}},
	)
	content, files, others := readAll(t, vol)
	if f := files["/secret"]; len(f.NotDecoded) != 2 || f.NotDecoded[0] != (StreamCount{22, 1, 11}) || f.NotDecoded[1] != (StreamCount{20, 2, 5100}) || f.DataStream != 20 {
		t.Fatalf("/secret: %+v, %+v", f.NotDecoded, f)
	}
	if f := files["/win"]; len(f.NotDecoded) != 1 || f.NotDecoded[0].Stream != 11 {
		t.Fatalf("/win: %+v", f.NotDecoded)
	}
	if string(content["/fork"]) != "hello" || files["/fork"].NotDecoded[0].Stream != 13 {
		t.Fatalf("/fork: %q %+v", content["/fork"], files["/fork"].NotDecoded)
	}
	var raw int
	for _, it := range others {
		if it.Kind == KindRaw {
			raw++
			if it.File == nil || it.Stream == 0 || len(it.Data) == 0 {
				t.Fatalf("raw item %+v", it)
			}
		}
	}
	if raw != 5 {
		t.Fatalf("%d raw items, want 5", raw)
	}
	if StreamName(20) != "encrypted data" || StreamName(11) != "Win32 data" {
		t.Fatal("stream names")
	}
}

// A PRE_LABEL-only volume (labeled, never written) has a label and nothing
// else; a BB03 block with the encrypted-block flag is refused.
func TestPreLabelAndEncryptedBlock(t *testing.T) {
	now := time.Unix(1795749354, 0)
	w := newBlockWriter(3, 64512)
	w.write(SessionKey{1, 2}, PreLabel, 0, volLabelData(BaculaID, 11, "Pre-0001", now))
	vol := w.bytes()
	fs := NewFiles(NewReader(bytes.NewReader(vol)))
	it, err := fs.Next()
	if err != nil || it.Kind != KindVolume || !it.Volume.Pre || it.Volume.VolumeName != "Pre-0001" {
		t.Fatalf("%+v, %v", it, err)
	}
	if _, err := fs.Next(); err != io.EOF {
		t.Fatalf("after the label: %v", err)
	}
	enc := bytes.Clone(vol)
	binary.BigEndian.PutUint32(enc, bb03OptChecksum|bb03OptEncryptedBlk)
	binary.BigEndian.PutUint64(enc[24:], 0)
	h := xxh3Hash(enc)
	binary.BigEndian.PutUint64(enc[24:], h)
	if _, err := collect(t, NewReader(bytes.NewReader(enc))); !errors.Is(err, ErrEncryptedBlock) {
		t.Fatalf("encrypted block: %v", err)
	}
	bad := bytes.Clone(vol)
	bad[len(bad)-1] ^= 1
	if _, err := collect(t, NewReader(bytes.NewReader(bad))); !errors.Is(err, ErrChecksum) {
		t.Fatalf("BB03 checksum: %v", err)
	}
}

// endless streams one file of n bytes as a volume, written block by block
// as it is read, so the test itself holds no more than one block.
type endless struct {
	w    *blockWriter
	left int64
	fi   int32
	sess SessionKey
	sum  []byte
	buf  []byte
	end  bool
}

func (e *endless) Read(p []byte) (int, error) {
	for len(e.buf) == 0 {
		if e.end {
			return 0, io.EOF
		}
		chunk := make([]byte, 65536)
		for i := range chunk {
			chunk[i] = byte(i * 7)
		}
		switch {
		case e.left > 0:
			n := min(e.left, int64(len(chunk)))
			e.w.write(e.sess, e.fi, StreamFileData, chunk[:n])
			e.left -= n
		default:
			e.w.write(e.sess, EOSLabel, 9, sessionLabelData(BaculaID, 11, 9, true, 'T', time.Unix(1795749354, 0)))
			e.w.flushAll()
			e.end = true
		}
		e.buf = append(e.buf, e.w.out.Bytes()...)
		e.w.out.Reset()
	}
	n := copy(p, e.buf)
	e.buf = e.buf[n:]
	return n, nil
}

// Memory stays flat however large a file is: a 256 MiB file streams through
// with a heap of a few MiB.
func TestMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 256 MiB")
	}
	const size = 256 << 20
	sess := SessionKey{3, 1795749354}
	w := newBlockWriter(2, 64512)
	now := time.Unix(1795749354, 0)
	w.write(sess, VolLabel, 0, volLabelData(BaculaID, 11, "Big-0001", now))
	w.flushAll()
	w.write(sess, SOSLabel, 9, sessionLabelData(BaculaID, 11, 9, false, 0, now))
	w.write(sess, 1, StreamUnixAttributes, attrRecord(1, synthFile{path: "/big", typ: TypeReg, size: size}, StreamFileData))
	src := &endless{w: w, left: size, fi: 1, sess: sess}
	fs := NewFiles(NewReader(src))
	var peak uint64
	var got int64
	h := sha256.New()
	for n := 0; ; n++ {
		it, err := fs.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if it.Kind == KindData {
			got += int64(len(it.Data))
			if got <= 1<<20 {
				h.Write(it.Data)
			}
		}
		if n%2000 == 0 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	if got != size {
		t.Fatalf("read %d bytes", got)
	}
	if peak > 32<<20 {
		t.Fatalf("heap in use reached %d MiB", peak>>20)
	}
	t.Logf("256 MiB file streamed with at most %.1f MiB of heap in use", float64(peak)/(1<<20))
}

// Reading ahead stops, with its goroutines, when Files is closed early.
func TestReadAheadClose(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 20 {
		fs := NewFiles(NewMultiReader(FileVolumes(testdata(t, fixtureGzip))))
		fs.SetDecoders(4)
		for range 10 {
			if _, err := fs.Next(); err != nil {
				t.Fatal(err)
			}
		}
		if err := fs.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := fs.Next(); err == nil {
			t.Fatal("Next after Close succeeded")
		}
	}
	for i := 0; runtime.NumGoroutine() > before && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines left running (%d before)", n, before)
	}
}
