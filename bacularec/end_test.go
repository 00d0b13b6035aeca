package bacularec

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// blsEnds reads the block and record dump of the real bls (testdata/bls/
// VOL.blockrecs.txt, "bls -k -vv") of the volumes given in order and returns,
// per session and FileIndex, where the file's last record ends: the block of
// its last piece, the end of that block and the offset just past the piece.
// Blocks are contiguous in a File volume; a record header is 12 bytes, and a
// piece takes what its header announces or the rest of the block.
func blsEnds(t *testing.T, vols ...string) map[fileKey]RecordEnd {
	t.Helper()
	blkRe := regexp.MustCompile(`^Blk=(\d+) blen=(\d+) bVer=(\d+) `)
	recRe := regexp.MustCompile(`Rec: VId=(\d+) VT=(\d+) FI=(\S+) Strm=\S+ len=(\d+) `)
	ends := map[fileKey]RecordEnd{}
	for _, v := range vols {
		f, err := os.Open(filepath.Join("testdata", "bls", v+".blockrecs.txt"))
		if err != nil {
			t.Fatal(err)
		}
		var off, blen, pos int64 = 0, 0, 0
		var blk uint32
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if m := blkRe.FindStringSubmatch(sc.Text()); m != nil {
				off += blen
				n, _ := strconv.ParseUint(m[1], 10, 32)
				blen, _ = strconv.ParseInt(m[2], 10, 64)
				blk = uint32(n)
				if m[3] != "2" {
					t.Fatalf("%s: block version %s, the oracle knows BB02 only", v, m[3])
				}
				pos = bb02HeaderLen
				continue
			}
			m := recRe.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			n, _ := strconv.ParseInt(m[4], 10, 64)
			pos = min(pos+recHeaderLen+n, blen)
			fi, err := strconv.Atoi(m[3])
			if err != nil {
				continue // a label
			}
			id, _ := strconv.ParseUint(m[1], 10, 32)
			tm, _ := strconv.ParseUint(m[2], 10, 32)
			ends[fileKey{SessionKey{uint32(id), uint32(tm)}, int32(fi)}] = RecordEnd{Volume: v, Block: blk, BlockEnd: off + blen, Offset: off + pos}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(filepath.Join("testdata", v)); err != nil || st.Size() != off+blen {
			t.Fatalf("%s: the blocks of the bls dump add up to %d bytes, the volume has %v (%v)", v, off+blen, st.Size(), err)
		}
	}
	return ends
}

type fileKey struct {
	s  SessionKey
	fi int32
}

// File.End, at KindFileEnd, is where bls shows the file's last record
// ending, for every file of volumes with records continued over blocks
// (64512- and 16384-byte blocks), two interleaved jobs, and a job spanning
// two volumes; with and without records read ahead (SetDecoders).
func TestFileEnd(t *testing.T) {
	for _, vols := range [][]string{
		{"bacula-9.6.7-plain-md5.vol"},
		{"bacula-9.6.7-smallblock-16k-md5.vol"},
		{"bacula-9.6.7-gzip-sha1.vol"},
		{"bacula-9.6.7-interleave-2jobs.vol"},
		{"bacula-9.6.7-span.1.vol", "bacula-9.6.7-span.2.vol"},
	} {
		want := blsEnds(t, vols...)
		var paths []string
		for _, v := range vols {
			paths = append(paths, filepath.Join("testdata", v))
		}
		for _, decoders := range []int{1, 4} {
			f := NewFiles(NewMultiReader(FileVolumes(paths...)))
			f.SetDecoders(decoders)
			n, spanning := 0, 0
			for {
				it, err := f.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%v: %v", vols, err)
				}
				if it.Kind != KindFileEnd {
					continue
				}
				n++
				k := fileKey{it.File.Job.Session, it.File.FileIndex}
				if got, ok := want[k]; !ok || it.File.End != got {
					t.Errorf("%v (decoders %d): %s (session %s, FileIndex %d): End %+v, bls shows %+v", vols, decoders,
						it.File.Path, k.s, k.fi, it.File.End, got)
				}
				if e := it.File.End; e.Offset > e.BlockEnd || e.BlockEnd <= 0 {
					t.Errorf("%v: %s: End %+v out of order", vols, it.File.Path, e)
				}
				if it.File.Written > 64<<10 {
					spanning++
				}
			}
			if n != len(want) || spanning == 0 {
				t.Errorf("%v: %d files ended, bls shows %d; %d files over 64 KiB (want some)", vols, n, len(want), spanning)
			}
		}
	}
}

// Record.End: a record in one block ends right after its data; one
// continued in later blocks ends in the block of its last piece.
func TestRecordEnd(t *testing.T) {
	r := NewMultiReader(FileVolumes(filepath.Join("testdata", "bacula-9.6.7-plain-md5.vol")))
	continued := 0
	var last RecordEnd
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		e := rec.End
		if e.Volume != rec.Volume || e.Offset <= rec.Offset || e.Offset > e.BlockEnd || e.Offset <= last.Offset {
			t.Fatalf("record at %d (block %d): End %+v (previous record's %+v)", rec.Offset, rec.Block.Number, e, last)
		}
		if e.Block == rec.Block.Number {
			if e.Offset != rec.Offset+recHeaderLen+int64(len(rec.Data)) {
				t.Errorf("record at %d, %d bytes, in one block: End %+v", rec.Offset, len(rec.Data), e)
			}
			if e.BlockEnd != rec.BlockOffset+int64(rec.Block.Length) {
				t.Errorf("record at %d: BlockEnd %d, the block is %d bytes at %d", rec.Offset, e.BlockEnd, rec.Block.Length, rec.BlockOffset)
			}
		} else {
			continued++
			if e.Block < rec.Block.Number || e.BlockEnd <= rec.BlockOffset+int64(rec.Block.Length) {
				t.Errorf("continued record at %d (block %d): End %+v", rec.Offset, rec.Block.Number, e)
			}
		}
		last = e
	}
	if continued == 0 {
		t.Fatal("no record continued over blocks: the fixture does not test that")
	}
}
