package bacularec

import (
	"errors"
	"math"
	"testing"
)

func TestBase64Int(t *testing.T) {
	for _, tc := range []struct {
		s string
		v int64
	}{
		{"A", 0}, {"B", 1}, {"/", 63}, {"BA", 64}, {"P4A", 65024}, {"mIZ3", 9995895},
		{"IGk", 0o100644}, {"BrCPXf", 1795749343}, {"-BA", -64}, {"-B", -1},
		{"H//////////", math.MaxInt64}, {"-H//////////", -math.MaxInt64},
	} {
		got, err := DecodeBase64Int([]byte(tc.s))
		if err != nil || got != tc.v {
			t.Errorf("DecodeBase64Int(%q) = %d, %v; want %d", tc.s, got, err, tc.v)
		}
		if enc := EncodeBase64Int(tc.v); enc != tc.s {
			t.Errorf("EncodeBase64Int(%d) = %q, want %q", tc.v, enc, tc.s)
		}
	}
	for _, bad := range []string{"", "-", "A*B", "A B", "QAAAAAAAAAA", "AAAAAAAAAAAA"} {
		if v, err := DecodeBase64Int([]byte(bad)); !errors.Is(err, ErrAttributes) {
			t.Errorf("DecodeBase64Int(%q) = %d, %v; want ErrAttributes", bad, v, err)
		}
	}
}

func TestParseStat(t *testing.T) {
	// A stat packet from a real 9.6.7 volume (bacula-format.md §9.2).
	st, err := ParseStat([]byte("P4A mIZ3 IGk B A A A g+z BAA EI BrCPXf BrCPXf BrCPXf A A C"))
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{Dev: 65024, Ino: 9995895, Mode: 0o100644, Nlink: 1, Size: 135091, Blksize: 4096,
		Blocks: 264, Atime: 1795749343, Mtime: 1795749343, Ctime: 1795749343, DataStream: 2}
	if st != want {
		t.Fatalf("ParseStat = %+v\nwant %+v", st, want)
	}
	// Old format: 13 fields only; negative times; 32-bit uid beyond int32.
	old := "A A IGk B " + EncodeBase64Int(4000000000) + " " + EncodeBase64Int(4000000001) +
		" A A A A " + EncodeBase64Int(-3600) + " " + EncodeBase64Int(-3600) + " A"
	st, err = ParseStat([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if st.UID != 4000000000 || st.GID != 4000000001 || st.Mtime != -3600 || st.DataStream != 0 {
		t.Fatalf("ParseStat old/negative = %+v", st)
	}
	if _, err := ParseStat([]byte("A A A")); !errors.Is(err, ErrAttributes) {
		t.Fatalf("short stat: %v", err)
	}
}

func TestParseAttributes(t *testing.T) {
	stat := "P4A mIZ3 IGk B A A A g+z BAA EI BrCPXf BrCPXf BrCPXf A A C"
	for _, tc := range []struct {
		name string
		rec  string
		want File
	}{
		{"regular", "7 3 /data/a file.txt\x00" + stat + "\x00\x00\x000\x00",
			File{FileIndex: 7, Type: TypeReg, Path: "/data/a file.txt"}},
		{"symlink", "8 4 /data/l\x00" + stat + "\x00../target\x00\x000\x00",
			File{FileIndex: 8, Type: TypeSymlink, Path: "/data/l", Link: "../target"}},
		{"hard link", "9 1 /data/h2\x00" + stat + "\x00/data/h1\x00\x000\x00",
			File{FileIndex: 9, Type: TypeLinkSaved, Path: "/data/h2", Link: "/data/h1"}},
		{"directory", "10 5 /data/dir/\x00" + stat + "\x00\x00\x000\x00",
			File{FileIndex: 10, Type: TypeDirEnd, Path: "/data/dir/"}},
		{"no delta", "11 3 /x\x00" + stat + "\x00\x00\x00",
			File{FileIndex: 11, Type: TypeReg, Path: "/x"}},
		{"delta and attrEx", "12 65539 /y\x00" + stat + "\x00\x00EX\x003\x00",
			File{FileIndex: 12, Type: TypeReg, Path: "/y", AttrEx: "EX", DeltaSeq: 3}},
		{"newline in name", "13 3 /a\nb\x00" + stat + "\x00\x00\x000\x00",
			File{FileIndex: 13, Type: TypeReg, Path: "/a\nb"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseAttributes([]byte(tc.rec))
			if err != nil {
				t.Fatal(err)
			}
			if f.FileIndex != tc.want.FileIndex || f.Type != tc.want.Type || f.Path != tc.want.Path ||
				f.Link != tc.want.Link || f.AttrEx != tc.want.AttrEx || f.DeltaSeq != tc.want.DeltaSeq {
				t.Fatalf("got %+v\nwant %+v", f, tc.want)
			}
			if f.Stat.Size != 135091 {
				t.Fatalf("stat not decoded: %+v", f.Stat)
			}
		})
	}
	// A deleted-file record (accurate mode): all-zero stat but the times.
	f, err := ParseAttributes([]byte("3 23 /data/todelete.txt\x00A A A A A A A A A A A BrCPXf BrCPXf A A C\x00\x00\x000\x00"))
	if err != nil || f.Type != TypeDeleted || f.Stat.Mtime != 1795749343 || f.Stat.Mode != 0 {
		t.Fatalf("deleted: %+v, %v", f, err)
	}
	for _, bad := range []string{"", "x 3 /a\x00", "1 3", "1 3 \x00" + stat + "\x00", "1 3 /a\x00A A\x00\x00\x00", "1 3 /a\x00" + stat + "\x00\x00\x00zz\x00"} {
		if _, err := ParseAttributes([]byte(bad)); !errors.Is(err, ErrAttributes) {
			t.Errorf("ParseAttributes(%q) = %v, want ErrAttributes", bad, err)
		}
	}
}
