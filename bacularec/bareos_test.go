package bacularec

import (
	"bytes"
	"encoding/binary"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zeebo/xxh3"
)

const bareosVectors = "../internal/fastlz/testdata/bareos-compress"

// bareosVolume builds a Bareos-style volume (label "Bareos 2.0 immortal",
// VerNum 20, 1 MiB blocks) holding one file per record payload, each with
// its XXH3-128 digest (stream 40, 16 bytes, as Bareos 23 writes it).
func bareosVolume(t *testing.T, files map[string]struct {
	stream int32
	rec    []byte
	want   []byte
}) []byte {
	t.Helper()
	now := time.Unix(1795749354, 0)
	sess := SessionKey{1, 1795749354}
	w := newBlockWriter(2, 1<<20)
	w.write(sess, VolLabel, 0, volLabelData(BareosID, 20, "Full-0001", now))
	w.flushAll()
	w.write(sess, SOSLabel, 7, sessionLabelData(BareosID, 20, 7, false, 0, now))
	fi := int32(0)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		f := files[name]
		fi++
		stat := "A A IGk B A A A " + EncodeBase64Int(int64(len(f.want))) + " A A A A A A A " + EncodeBase64Int(int64(f.stream))
		attr := []byte(strings.Join([]string{strconv.Itoa(int(fi)) + " 3 /bareos/" + name, stat, "", "", "0", ""}, "\x00"))
		w.write(sess, fi, StreamUnixAttributes, attr)
		w.write(sess, fi, f.stream, f.rec)
		sum := xxh3.Hash128(f.want).Bytes()
		w.write(sess, fi, StreamXXH3Digest, sum[:])
	}
	w.write(sess, EOSLabel, 7, sessionLabelData(BareosID, 20, 7, true, 'T', now))
	return w.bytes()
}

// Every Bareos compressed-record vector decodes to its input when read from
// a Bareos volume, at the record's sparse offset, with its XXH3-128 digest
// checked.
func TestBareosVectors(t *testing.T) {
	recs, err := filepath.Glob(filepath.Join(bareosVectors, "*.rec"))
	if err != nil || len(recs) < 20 {
		t.Fatalf("vectors: %v, %v", recs, err)
	}
	files := map[string]struct {
		stream int32
		rec    []byte
		want   []byte
	}{}
	offsets := map[string]int64{}
	for _, p := range recs {
		name := strings.TrimSuffix(filepath.Base(p), ".rec")
		rec, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		in := inputOf(name)
		want, err := os.ReadFile(filepath.Join(bareosVectors, in))
		if err != nil {
			t.Fatalf("%s: input %s: %v", name, in, err)
		}
		stream := int32(StreamCompressedData)
		if strings.Contains(name, "sparse") {
			stream = StreamSparseCompressed
			offsets[name] = int64(binary.BigEndian.Uint64(rec))
		}
		if len(want) == 0 {
			continue // Bareos never writes a data record for empty input
		}
		files[name] = struct {
			stream int32
			rec    []byte
			want   []byte
		}{stream, rec, want}
	}
	vol := bareosVolume(t, files)
	f := NewFiles(NewReader(bytes.NewReader(vol)))
	got := map[string][]byte{}
	var cur string
	var sawVolume, sawEnd bool
	for {
		it, err := f.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch it.Kind {
		case KindVolume:
			sawVolume = it.Volume.ID == BareosID && it.Volume.VerNum == 20 && it.Volume.VolumeName == "Full-0001"
		case KindFile:
			cur = strings.TrimPrefix(it.File.Path, "/bareos/")
		case KindData:
			if it.Offset != offsets[cur] {
				t.Errorf("%s: data at offset %d, want %d", cur, it.Offset, offsets[cur])
			}
			got[cur] = append(got[cur], it.Data...)
		case KindFileEnd:
			if it.File.DigestErr != nil || !it.File.DigestChecked || it.File.Digest.Algo != "XXH3-128" {
				t.Errorf("%s: digest %+v checked=%v err=%v", cur, it.File.Digest, it.File.DigestChecked, it.File.DigestErr)
			}
		case KindJobEnd:
			sawEnd = it.Job.OK() && it.Job.JobID == 7
		case KindNotice:
			t.Errorf("notice: %v", it.Err)
		}
	}
	if !sawVolume || !sawEnd {
		t.Fatalf("volume label seen %v, job ended OK %v", sawVolume, sawEnd)
	}
	for name, f := range files {
		if !bytes.Equal(got[name], f.want) {
			t.Errorf("%s: decoded %d bytes, want %d", name, len(got[name]), len(f.want))
		}
	}
}

// inputOf maps a vector name to its input file, e.g. "fz4l-text64k" to
// "in-text64k.bin".
func inputOf(name string) string {
	switch {
	case strings.Contains(name, "sparse-text65528"):
		return "in-text65528.bin"
	case strings.HasPrefix(name, "synthetic-multiblock"):
		return "in-text400k.bin"
	}
	i := strings.LastIndexByte(name, '-')
	return "in-" + name[i+1:] + ".bin"
}
