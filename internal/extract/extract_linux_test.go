//go:build linux

package extract

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/openbrc/brc/bacularec"
)

func TestRegularFiles(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		mode     uint32
		data     string
		uid, gid uint32
	}{
		{"plain", "/etc/hosts", 0o644, "127.0.0.1 localhost\n", 0, 0},
		{"setuid", "/usr/bin/su", 0o4755, "ELF", 0, 0},
		{"setgid", "/usr/bin/wall", 0o2755, "ELF2", 0, 5},
		{"setuid owned", "/opt/x", 0o4750, "x", 1234, 5678},
		{"private", "/home/u/.ssh/id", 0o600, "key", 1000, 1000},
		{"empty", "/var/empty file", 0o640, "", 7, 8},
		{"newline name", "/tmp/a\nb", 0o644, "nl", 0, 0},
		{"latin1 name", "/tmp/caf\xe9", 0o644, "latin1", 0, 0},
		{"spaces", "/tmp/ x y /z ", 0o644, "sp", 0, 0},
	}
	for _, walk := range []bool{false, true} {
		e := newEnv(t, Options{})
		if walk {
			e.noOpenat2()
		}
		for _, tc := range tests {
			f, pieces := reg(tc.path, tc.mode, tc.data)
			f.Stat.UID, f.Stat.GID = tc.uid, tc.gid
			e.mustPut(f, pieces...)
		}
		e.close()
		for _, tc := range tests {
			p := e.p(tc.path)
			st := lstat(t, p) // before reading, which may update atime
			if got := readFile(t, p); got != tc.data {
				t.Errorf("%s: content %q, want %q", tc.name, got, tc.data)
			}
			if st.Mode != sIFREG|tc.mode {
				t.Errorf("%s: mode %o, want %o", tc.name, st.Mode, sIFREG|tc.mode)
			}
			if st.Atim.Sec != 1600000000 || st.Atim.Nsec != 0 || st.Mtim.Sec != 1500000000 || st.Mtim.Nsec != 0 {
				t.Errorf("%s: atime %v mtime %v", tc.name, st.Atim, st.Mtim)
			}
			if isRoot && (st.Uid != tc.uid || st.Gid != tc.gid) {
				t.Errorf("%s: owner %d:%d, want %d:%d", tc.name, st.Uid, st.Gid, tc.uid, tc.gid)
			}
			if !isRoot && st.Uid != uint32(os.Geteuid()) {
				t.Errorf("%s: owner %d, want self", tc.name, st.Uid)
			}
		}
		if s := e.w.Stats(); s.Files != int64(len(tests)) || s.Errors != 0 {
			t.Errorf("stats %+v", s)
		}
		e.outsideUntouched()
	}
}

func TestSparse(t *testing.T) {
	e := newEnv(t, Options{})
	blk := bytes.Repeat([]byte{'d'}, 8192)
	// Backup-sparse: pieces at 0 and 1 MiB; trailing hole to 4 MiB.
	f1 := &bacularec.File{Type: bacularec.TypeReg, Path: "/sparse", Stat: bacularec.Stat{Mode: sIFREG | 0o644, Size: 4 << 20}}
	e.mustPut(f1, piece{0, blk}, piece{1 << 20, blk})
	// Zero-skip: a sequential 64 KiB zero piece between data pieces, and a
	// data piece with an aligned zero run inside it.
	zeros := make([]byte, 64<<10)
	mixed := append(append(bytes.Repeat([]byte{'a'}, 4096), make([]byte, 32<<10)...), bytes.Repeat([]byte{'b'}, 100)...)
	f2 := &bacularec.File{Type: bacularec.TypeReg, Path: "/zeros", Stat: bacularec.Stat{Mode: sIFREG | 0o644}}
	off2 := int64(4096 + 64<<10)
	f2.Stat.Size = off2 + int64(len(mixed))
	e.mustPut(f2, piece{0, blk[:4096]}, piece{4096, zeros}, piece{off2, mixed})
	// Trailing zero piece: the size must still come out right.
	f3 := &bacularec.File{Type: bacularec.TypeReg, Path: "/tailzero", Stat: bacularec.Stat{Mode: sIFREG | 0o644, Size: 4096 + 64<<10}}
	e.mustPut(f3, piece{0, blk[:4096]}, piece{4096, zeros})
	// Unaligned offsets with zeros: content must be exact.
	f4 := &bacularec.File{Type: bacularec.TypeReg, Path: "/unaligned", Stat: bacularec.Stat{Mode: sIFREG | 0o644, Size: 100 + 3*4096}}
	e.mustPut(f4, piece{0, []byte(strings.Repeat("h", 100))}, piece{100, make([]byte, 3*4096)})
	e.close()

	want1 := make([]byte, 4<<20)
	copy(want1, blk)
	copy(want1[1<<20:], blk)
	want2 := append(append(append([]byte{}, blk[:4096]...), zeros...), mixed...)
	want3 := append(append([]byte{}, blk[:4096]...), zeros...)
	want4 := append([]byte(strings.Repeat("h", 100)), make([]byte, 3*4096)...)
	for _, c := range []struct {
		path      string
		want      []byte
		maxBlocks int64 // 512-byte units
	}{
		{"/sparse", want1, 2 * 8192 / 512 * 2},
		{"/zeros", want2, (4096 + 4096 + 4096) / 512 * 2},
		{"/tailzero", want3, 4096 / 512 * 2},
		{"/unaligned", want4, 4 * 4096 / 512},
	} {
		if got := readFile(t, e.p(c.path)); got != string(c.want) {
			t.Errorf("%s: content differs (len %d, want %d)", c.path, len(got), len(c.want))
		}
		if st := lstat(t, e.p(c.path)); st.Blocks > c.maxBlocks {
			t.Errorf("%s: %d blocks, want at most %d: holes not kept", c.path, st.Blocks, c.maxBlocks)
		}
	}
	s := e.w.Stats()
	if want := int64(64<<10 + 32<<10 + 64<<10 + 2*4096); s.HoleBytes != want {
		t.Errorf("HoleBytes %d, want %d", s.HoleBytes, want)
	}
}

func TestDirectoryMetadataDeferred(t *testing.T) {
	e := newEnv(t, Options{})
	// Contents first, directories after, as on a volume.
	f, p := reg("/top/mid/leaf/file", 0o644, "x")
	e.mustPut(f, p...)
	e.mustPut(dirRec("/top/mid/leaf/", 0o500, 1000))
	f, p = reg("/top/mid/other", 0o644, "y")
	e.mustPut(f, p...)
	e.mustPut(dirRec("/top/mid/", 0o1777, 2000))
	e.mustPut(dirRec("/top/sgid/", 0o2755, 2500)) // empty directory
	e.mustPut(dirRec("/top/", 0o755, 3000))
	// A later job adds a file into a directory already recorded.
	f, p = reg("/top/mid/late", 0o644, "z")
	e.mustPut(f, p...)
	e.close()
	for _, c := range []struct {
		rel   string
		mode  uint32
		mtime int64
	}{
		{"top/mid/leaf", 0o500, 1000},
		{"top/mid", 0o1777, 2000},
		{"top/sgid", 0o2755, 2500},
		{"top", 0o755, 3000},
	} {
		st := lstat(t, e.p(c.rel))
		if st.Mode != sIFDIR|c.mode || st.Mtim.Sec != c.mtime || st.Atim.Sec != c.mtime+1 {
			t.Errorf("%s: mode %o mtime %d atime %d, want %o %d %d", c.rel, st.Mode, st.Mtim.Sec, st.Atim.Sec, sIFDIR|c.mode, c.mtime, c.mtime+1)
		}
	}
	if s := e.w.Stats(); s.Dirs != 4 || s.Files != 3 {
		t.Errorf("stats %+v", s)
	}
}

func TestMissingParentsAre0700(t *testing.T) {
	e := newEnv(t, Options{})
	f, p := reg("/a/b/c", 0o644, "x")
	e.mustPut(f, p...)
	if st := lstat(t, e.p("a/b")); st.Mode != sIFDIR|0o700 {
		t.Errorf("parent mode %o while extracting", st.Mode)
	}
	e.close()
	if st := lstat(t, e.p("a/b")); st.Mode != sIFDIR|0o777&^uint32(syscall.Umask(0o022)) {
		t.Errorf("parent without a record: mode %o after Close", st.Mode)
	}
}

func TestDeepPaths(t *testing.T) {
	comp := strings.Repeat("d", 200)
	deep := "/" + strings.Repeat(comp+"/", 40) + "file" // > PATH_MAX
	many := "/" + strings.Repeat("x/", 1200) + "file"   // > 4*dirCacheMax components
	for _, walk := range []bool{false, true} {
		e := newEnv(t, Options{})
		if walk {
			e.noOpenat2()
		}
		for _, p := range []string{deep, many} {
			f, pieces := reg(p, 0o644, "deep")
			e.mustPut(f, pieces...)
			g, pieces := reg(p+"2", 0o644, "deep2")
			e.mustPut(g, pieces...)
			e.mustPut(dirRec(p[:len(p)-len("file")], 0o750, 77))
		}
		e.close()
		for _, p := range []string{deep, many} {
			fd, err := unix.Open(e.root, unix.O_PATH|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			dir := strings.Trim(p[:len(p)-len("file")], "/")
			for len(dir) > 0 { // relative steps: the path is too long for one call
				step, rest, _ := strings.Cut(dir, "/")
				nfd, err := unix.Openat(fd, step, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
				unix.Close(fd)
				if err != nil {
					t.Fatal(err)
				}
				fd, dir = nfd, rest
			}
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil || st.Mode != sIFDIR|0o750 || st.Mtim.Sec != 77 {
				t.Errorf("deep dir: mode %o mtime %d %v", st.Mode, st.Mtim.Sec, err)
			}
			if err := unix.Fstatat(fd, "file2", &st, 0); err != nil || st.Size != 5 {
				t.Errorf("deep file: size %d %v", st.Size, err)
			}
			unix.Close(fd)
		}
		if n := len(e.w.dirs); n > 4*dirCacheMax+2 {
			t.Errorf("directory cache holds %d fds", n)
		}
		if s := e.w.Stats(); s.Errors != 0 || s.Files != 4 {
			t.Errorf("stats %+v", s)
		}
	}
}

func TestDataAllocs(t *testing.T) {
	e := newEnv(t, Options{})
	f, _ := reg("/f", 0o644, "")
	f.Type = bacularec.TypeReg
	if err := e.w.Apply(&bacularec.Item{Kind: bacularec.KindFile, File: f}); err != nil {
		t.Fatal(err)
	}
	buf := bytes.Repeat([]byte{1}, 65536)
	it := &bacularec.Item{Kind: bacularec.KindData, File: f, Data: buf}
	if n := testing.AllocsPerRun(100, func() {
		if err := e.w.Apply(it); err != nil {
			t.Fatal(err)
		}
		it.Offset += int64(len(buf))
	}); n != 0 {
		t.Errorf("KindData: %v allocations per item", n)
	}
	if err := e.w.Apply(&bacularec.Item{Kind: bacularec.KindFileEnd, File: f}); err != nil {
		t.Fatal(err)
	}
	e.close()
}

func TestRootRecord(t *testing.T) {
	e := newEnv(t, Options{})
	e.mustPut(dirRec("/", 0o751, 1234))
	e.close()
	if st := lstat(t, e.root); st.Mode != sIFDIR|0o751 || st.Mtim.Sec != 1234 {
		t.Errorf("root mode %o mtime %d", st.Mode, st.Mtim.Sec)
	}
}

func TestHardLinks(t *testing.T) {
	e := newEnv(t, Options{})
	f, p := reg("/a/first", 0o644, "shared")
	e.mustPut(f, p...)
	link := &bacularec.File{Type: bacularec.TypeLinkSaved, Path: "/b/second", Link: "/a/first"}
	e.mustPut(link)
	// Replaces whatever is at the new name.
	if err := os.WriteFile(e.p("b/third"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustPut(&bacularec.File{Type: bacularec.TypeLinkSaved, Path: "/b/third", Link: "/a/first"})
	// Target never extracted.
	err := e.put(&bacularec.File{Type: bacularec.TypeLinkSaved, Path: "/b/dangling", Link: "/a/missing"})
	if !errors.Is(err, ErrLinkTarget) {
		t.Errorf("missing target: %v, want ErrLinkTarget", err)
	}
	err = e.put(&bacularec.File{Type: bacularec.TypeLinkSaved, Path: "/b/dangling2", Link: "/nodir/missing"})
	if !errors.Is(err, ErrLinkTarget) {
		t.Errorf("missing target dir: %v, want ErrLinkTarget", err)
	}
	e.close()
	a, b, c := lstat(t, e.p("a/first")), lstat(t, e.p("b/second")), lstat(t, e.p("b/third"))
	if a.Ino != b.Ino || a.Ino != c.Ino || a.Nlink != 3 {
		t.Errorf("not the same inode: %d %d %d nlink %d", a.Ino, b.Ino, c.Ino, a.Nlink)
	}
	if s := e.w.Stats(); s.HardLinks != 2 || s.Errors != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestSymlinks(t *testing.T) {
	e := newEnv(t, Options{})
	targets := map[string]string{
		"/l/abs":     "/etc/passwd",
		"/l/rel":     "../../../../outside",
		"/l/dangle":  "nowhere",
		"/l/odd":     "a\nb\xff c",
		"/l/replace": "new",
	}
	if err := os.MkdirAll(e.p("l"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("old", e.p("l/replace")); err != nil {
		t.Fatal(err)
	}
	for path, target := range targets {
		f := symlinkRec(path, target)
		f.Stat.UID, f.Stat.GID = 42, 43
		e.mustPut(f)
	}
	e.close()
	for path, target := range targets {
		st := lstat(t, e.p(path)) // before readlink, which updates atime
		got, err := os.Readlink(e.p(path))
		if err != nil || got != target {
			t.Errorf("%s -> %q (%v), want %q", path, got, err, target)
		}
		if st.Mtim.Sec != 1400000000 || st.Atim.Sec != 1400000001 {
			t.Errorf("%s: symlink times %d %d", path, st.Atim.Sec, st.Mtim.Sec)
		}
		if isRoot && (st.Uid != 42 || st.Gid != 43) {
			t.Errorf("%s: symlink owner %d:%d", path, st.Uid, st.Gid)
		}
	}
	e.outsideUntouched()
}

func TestSpecialFiles(t *testing.T) {
	e := newEnv(t, Options{})
	fifo := &bacularec.File{Type: bacularec.TypeSpecial, Path: "/dev/fifo",
		Stat: bacularec.Stat{Mode: syscall.S_IFIFO | 0o640, Mtime: 99, Atime: 98}}
	e.mustPut(fifo)
	sock := &bacularec.File{Type: bacularec.TypeSpecial, Path: "/dev/sock", Stat: bacularec.Stat{Mode: syscall.S_IFSOCK | 0o777}}
	e.mustPut(sock)
	null := &bacularec.File{Type: bacularec.TypeSpecial, Path: "/dev/null",
		Stat: bacularec.Stat{Mode: syscall.S_IFCHR | 0o666, Rdev: unix.Mkdev(1, 3), Mtime: 77, UID: 0, GID: 0}}
	e.mustPut(null)
	blk := &bacularec.File{Type: bacularec.TypeSpecial, Path: "/dev/sda9",
		Stat: bacularec.Stat{Mode: syscall.S_IFBLK | 0o660, Rdev: unix.Mkdev(8, 9), GID: 6}}
	e.mustPut(blk)
	// A FIFO whose content was read as data is restored as a regular file.
	df := &bacularec.File{Type: bacularec.TypeFIFO, Path: "/dev/datafifo",
		Stat: bacularec.Stat{Mode: syscall.S_IFIFO | 0o600, Mtime: 5}}
	e.mustPut(df, piece{0, []byte("piped")})
	e.close()

	st := lstat(t, e.p("dev/fifo"))
	if st.Mode != syscall.S_IFIFO|0o640 || st.Mtim.Sec != 99 || st.Atim.Sec != 98 {
		t.Errorf("fifo mode %o mtime %d", st.Mode, st.Mtim.Sec)
	}
	if _, err := os.Lstat(e.p("dev/sock")); !os.IsNotExist(err) {
		t.Errorf("socket restored: %v", err)
	}
	if got := readFile(t, e.p("dev/datafifo")); got != "piped" {
		t.Errorf("TypeFIFO content %q", got)
	}
	if st := lstat(t, e.p("dev/datafifo")); st.Mode != sIFREG|0o600 {
		t.Errorf("TypeFIFO mode %o", st.Mode)
	}
	s := e.w.Stats()
	if !isRoot {
		if s.Skipped != 3 || s.Specials != 1 {
			t.Errorf("non-root stats %+v", s)
		}
		t.Skip("needs root: mknod of device nodes")
	}
	if st := lstat(t, e.p("dev/null")); st.Mode != syscall.S_IFCHR|0o666 || st.Rdev != unix.Mkdev(1, 3) || st.Mtim.Sec != 77 {
		t.Errorf("char dev mode %o rdev %x", st.Mode, st.Rdev)
	}
	if st := lstat(t, e.p("dev/sda9")); st.Mode != syscall.S_IFBLK|0o660 || st.Rdev != unix.Mkdev(8, 9) || st.Gid != 6 {
		t.Errorf("block dev mode %o rdev %x gid %d", st.Mode, st.Rdev, st.Gid)
	}
	if s.Skipped != 1 || s.Specials != 3 || s.Files != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestNoDevices(t *testing.T) {
	e := newEnv(t, Options{NoDevices: true})
	e.mustPut(&bacularec.File{Type: bacularec.TypeSpecial, Path: "/null",
		Stat: bacularec.Stat{Mode: syscall.S_IFCHR | 0o666, Rdev: unix.Mkdev(1, 3)}})
	e.close()
	if _, err := os.Lstat(e.p("null")); !os.IsNotExist(err) {
		t.Errorf("device made with NoDevices: %v", err)
	}
	if s := e.w.Stats(); s.Skipped != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestReplaceExisting(t *testing.T) {
	e := newEnv(t, Options{})
	// A hard link to an existing file must not be written through.
	if err := os.WriteFile(e.p("x"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(e.p("x"), e.p("y")); err != nil {
		t.Fatal(err)
	}
	// A symlink, an empty directory and a FIFO in the way.
	if err := os.Symlink(filepath.Join(e.outside, "victim"), e.p("s")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(e.p("emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(e.p("full/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(e.p("fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/x", "/s", "/emptydir", "/fifo"} {
		f, pieces := reg(p, 0o644, "new "+p)
		e.mustPut(f, pieces...)
		if got := readFile(t, e.p(p)); got != "new "+p {
			t.Errorf("%s: %q", p, got)
		}
		if st := lstat(t, e.p(p)); st.Mode != sIFREG|0o644 {
			t.Errorf("%s: mode %o", p, st.Mode)
		}
	}
	if got := readFile(t, e.p("y")); got != "old" {
		t.Errorf("other hard link changed: %q", got)
	}
	f, pieces := reg("/full", 0o644, "nope")
	if err := e.put(f, pieces...); err == nil {
		t.Error("non-empty directory replaced by a file")
	}
	// A file in the way of a parent directory is replaced by the directory.
	f, pieces = reg("/x/inside", 0o644, "in")
	e.mustPut(f, pieces...)
	// A directory record for an existing directory only updates metadata.
	e.mustPut(dirRec("/full/", 0o711, 5))
	e.close()
	if got := readFile(t, e.p("x/inside")); got != "in" {
		t.Errorf("x/inside: %q", got)
	}
	if st := lstat(t, e.p("full")); st.Mode != sIFDIR|0o711 || st.Mtim.Sec != 5 {
		t.Errorf("full: mode %o", st.Mode)
	}
	if _, err := os.Stat(e.p("full/sub")); err != nil {
		t.Error(err)
	}
	e.outsideUntouched()
}

// TestHostile feeds paths and links that try to get out of the root, with
// openat2 and with the component walk.
func TestHostile(t *testing.T) {
	for _, walk := range []bool{false, true} {
		name := "openat2"
		if walk {
			name = "walk"
		}
		t.Run(name, func(t *testing.T) { testHostile(t, walk) })
	}
}

func testHostile(t *testing.T, walk bool) {
	e := newEnv(t, Options{Deletions: true})
	if walk {
		e.noOpenat2()
	}
	out := e.outside
	if err := os.WriteFile(filepath.Join(filepath.Dir(out), "secret"), []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	unsafe := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrUnsafePath) {
			t.Errorf("%s: %v, want ErrUnsafePath", what, err)
		}
		var pe *PathError
		if !errors.As(err, &pe) {
			t.Errorf("%s: %T is not a *PathError", what, err)
		}
	}
	// Dot-dot and NUL, for every kind of record.
	for _, p := range []string{"/../x", "/a/../../x", "../outside/x", "/a/..", "/a/b\x00c", "/", ""} {
		f, pieces := reg(p, 0o644, "evil")
		unsafe("file "+p, e.put(f, pieces...))
		unsafe("symlink "+p, e.put(symlinkRec(p, "t")))
		unsafe("hardlink "+p, e.put(&bacularec.File{Type: bacularec.TypeLinkSaved, Path: p, Link: "/x"}))
		unsafe("delete "+p, e.put(&bacularec.File{Type: bacularec.TypeDeleted, Path: p}))
	}
	unsafe("dir /../", e.put(dirRec("/../", 0o777, 1)))
	unsafe("dir /a/../../", e.put(dirRec("/a/../../outside/", 0o777, 1)))

	// Symlinks to outside, then paths through them.
	e.mustPut(symlinkRec("/abs", out))
	e.mustPut(symlinkRec("/rel", "../outside"))
	e.mustPut(symlinkRec("/inroot", "d")) // relative, inside the root: not followed either
	e.mustPut(dirRec("/d/", 0o755, 1))
	for _, p := range []string{"/abs/passwd", "/rel/passwd", "/abs/sub/deep/file", "/inroot/file"} {
		f, pieces := reg(p, 0o644, "evil")
		unsafe("file "+p, e.put(f, pieces...))
		unsafe("symlink "+p, e.put(symlinkRec(p, "/etc")))
		unsafe("dir "+p, e.put(dirRec(p+"/", 0o777, 1)))
		fifo := &bacularec.File{Type: bacularec.TypeSpecial, Path: p, Stat: bacularec.Stat{Mode: syscall.S_IFIFO | 0o666}}
		unsafe("fifo "+p, e.put(fifo))
		unsafe("hardlink "+p, e.put(&bacularec.File{Type: bacularec.TypeLinkSaved, Path: p, Link: "/d"}))
	}
	// Hard links whose first name is outside or behind a symlink.
	unsafe("hardlink to ..", e.put(&bacularec.File{Type: bacularec.TypeLinkSaved, Path: "/h1", Link: "/../secret"}))
	if err := os.WriteFile(filepath.Join(out, "..", "outside-file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	unsafe("hardlink via symlink", e.put(&bacularec.File{Type: bacularec.TypeLinkSaved, Path: "/h2", Link: "/rel/../outside-file"}))
	unsafe("hardlink via symlink 2", e.put(&bacularec.File{Type: bacularec.TypeLinkSaved, Path: "/h3", Link: "/abs/x"}))
	// Deletions through a symlink; deleting the symlink itself is fine.
	if err := os.WriteFile(filepath.Join(out, "keep"), []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A deletion below a symbolic link does nothing (the link is never
	// followed) and is no error: after a directory became a symlink between
	// two jobs, Bacula's deletion records for its old entries look the same.
	deleted := e.w.Stats().Deleted
	if err := e.put(&bacularec.File{Type: bacularec.TypeDeleted, Path: "/abs/keep"}); err != nil || e.w.Stats().Deleted != deleted {
		t.Errorf("delete via symlink: %v, %d deleted", err, e.w.Stats().Deleted-deleted)
	}
	e.mustPut(&bacularec.File{Type: bacularec.TypeDeleted, Path: "/abs"})
	if _, err := os.Stat(filepath.Join(out, "keep")); err != nil {
		t.Fatalf("outside file deleted: %v", err)
	}
	if err := os.Remove(filepath.Join(out, "keep")); err != nil {
		t.Fatal(err)
	}

	// A symlink replacing a parent between two files, within the stream...
	f, pieces := reg("/p/one", 0o644, "1")
	e.mustPut(f, pieces...)
	e.mustPut(dirRec("/p/", 0o755, 1)) // deferred metadata for /p
	e.mustPut(&bacularec.File{Type: bacularec.TypeDeleted, Path: "/p/"})
	e.mustPut(symlinkRec("/p", out))
	f, pieces = reg("/p/two", 0o644, "2")
	unsafe("file after parent became symlink", e.put(f, pieces...))
	// ...and behind the Writer's back (its directory cache must not help).
	f, pieces = reg("/q/one", 0o644, "1")
	e.mustPut(f, pieces...)
	if err := os.RemoveAll(e.p("q")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(out, e.p("q")); err != nil {
		t.Fatal(err)
	}
	f, pieces = reg("/q/two", 0o644, "2")
	unsafe("file after external swap", e.put(f, pieces...))
	// A symlink at a file's own path is replaced, not written through.
	e.mustPut(symlinkRec("/victim", filepath.Join(out, "victim")))
	f, pieces = reg("/victim", 0o600, "mine")
	e.mustPut(f, pieces...)
	// A directory record at a symlink's path replaces the symlink.
	e.mustPut(symlinkRec("/d2", out))
	e.mustPut(dirRec("/d2/", 0o777, 1))

	if err := e.w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	e.outsideUntouched()
	if got := readFile(t, e.p("victim")); got != "mine" {
		t.Errorf("victim: %q", got)
	}
	if st := lstat(t, e.p("d2")); st.Mode != sIFDIR|0o777 {
		t.Errorf("d2 mode %o", st.Mode)
	}
	if got, _ := os.Readlink(e.p("p")); got != out {
		t.Errorf("/p is %q", got)
	}
	if b, _ := os.ReadFile(filepath.Join(filepath.Dir(out), "secret")); string(b) != "s" {
		t.Errorf("secret changed")
	}
	if s := e.w.Stats(); s.Errors == 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestDeletions(t *testing.T) {
	e := newEnv(t, Options{Deletions: true})
	for _, p := range []string{"/tree/a/b/c", "/tree/a/d", "/tree/e", "/file", "/keep/x"} {
		f, pieces := reg(p, 0o644, p)
		e.mustPut(f, pieces...)
	}
	e.mustPut(symlinkRec("/tree/a/link", "/keep")) // removed, not followed
	// Read-only and unreadable directories are still removed.
	if err := os.Chmod(e.p("tree/a/b"), 0o500); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(e.p("tree/a"), 0o000); err != nil {
		t.Fatal(err)
	}
	e.mustPut(&bacularec.File{Type: bacularec.TypeDeleted, Path: "/tree/"})
	e.mustPut(&bacularec.File{Type: bacularec.TypeDeleted, Path: "/file"})
	e.mustPut(&bacularec.File{Type: bacularec.TypeDeleted, Path: "/never/was"})
	// The tree can come back afterwards.
	f, pieces := reg("/tree/a/new", 0o644, "again")
	e.mustPut(f, pieces...)
	e.close()
	for _, p := range []string{"tree/a/b", "tree/e", "file", "tree/a/link"} {
		if _, err := os.Lstat(e.p(p)); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	if got := readFile(t, e.p("keep/x")); got != "/keep/x" {
		t.Errorf("keep/x: %q", got)
	}
	if got := readFile(t, e.p("tree/a/new")); got != "again" {
		t.Errorf("tree/a/new: %q", got)
	}
	if s := e.w.Stats(); s.Deleted != 2 {
		t.Errorf("stats %+v", s)
	}

	e = newEnv(t, Options{})
	f, pieces = reg("/file", 0o644, "x")
	e.mustPut(f, pieces...)
	e.mustPut(&bacularec.File{Type: bacularec.TypeDeleted, Path: "/file"})
	e.close()
	if _, err := os.Stat(e.p("file")); err != nil {
		t.Errorf("deleted without Options.Deletions: %v", err)
	}
	if s := e.w.Stats(); s.Skipped != 1 || s.Deleted != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestXattrs(t *testing.T) {
	e := newEnv(t, Options{})
	f, pieces := reg("/x/file", 0o444, "data") // read-only: user.* must still be set
	f.Xattrs = []bacularec.Xattr{{Name: "user.comment", Value: []byte("hello\x00world")}, {Name: "user.empty", Value: []byte{}}}
	if isRoot {
		f.Xattrs = append(f.Xattrs, bacularec.Xattr{Name: "trusted.t", Value: []byte("T")})
	}
	f.Xattrs = append(f.Xattrs, bacularec.Xattr{Name: "bogus.namespace", Value: []byte("x")})
	e.mustPut(f, pieces...)
	d := dirRec("/x/", 0o555, 10)
	d.Xattrs = []bacularec.Xattr{{Name: "user.dir", Value: []byte("D")}}
	e.mustPut(d)
	// Linux allows user.* only on regular files and directories: warning.
	fifo := &bacularec.File{Type: bacularec.TypeSpecial, Path: "/x/fifo", Stat: bacularec.Stat{Mode: syscall.S_IFIFO | 0o644},
		Xattrs: []bacularec.Xattr{{Name: "user.fifo", Value: []byte("F")}}}
	e.mustPut(fifo)
	e.close()
	get := func(p, name string) string {
		t.Helper()
		buf := make([]byte, 256)
		n, err := unix.Lgetxattr(e.p(p), name, buf)
		if err != nil {
			t.Errorf("%s %s: %v", p, name, err)
			return ""
		}
		return string(buf[:n])
	}
	if got := get("x/file", "user.comment"); got != "hello\x00world" {
		t.Errorf("user.comment = %q", got)
	}
	if got := get("x/file", "user.empty"); got != "" {
		t.Errorf("user.empty = %q", got)
	}
	if got := get("x", "user.dir"); got != "D" {
		t.Errorf("user.dir = %q", got)
	}
	s := e.w.Stats()
	if s.Warnings != 2 || s.Errors != 0 {
		t.Errorf("stats %+v (want 2 warnings: bogus namespace, user.* on a FIFO)", s)
	}
	if !isRoot {
		t.Skip("needs root: trusted.* xattrs")
	}
	if got := get("x/file", "trusted.t"); got != "T" {
		t.Errorf("trusted.t = %q", got)
	}
}

func TestSymlinkXattr(t *testing.T) {
	needRoot(t, "trusted.* xattrs on a symlink")
	e := newEnv(t, Options{})
	l := symlinkRec("/l", "/target")
	l.Xattrs = []bacularec.Xattr{{Name: "trusted.l", Value: []byte("L")}}
	e.mustPut(l)
	dev := &bacularec.File{Type: bacularec.TypeSpecial, Path: "/null", Stat: bacularec.Stat{Mode: syscall.S_IFCHR | 0o600, Rdev: unix.Mkdev(1, 3)},
		Xattrs: []bacularec.Xattr{{Name: "trusted.d", Value: []byte("N")}}}
	e.mustPut(dev)
	fifo := &bacularec.File{Type: bacularec.TypeSpecial, Path: "/fifo", Stat: bacularec.Stat{Mode: syscall.S_IFIFO | 0o600},
		Xattrs: []bacularec.Xattr{{Name: "trusted.f", Value: []byte("F")}}}
	e.mustPut(fifo)
	e.close()
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(e.p("fifo"), "trusted.f", buf); err != nil || string(buf[:n]) != "F" {
		t.Errorf("fifo xattr %q %v", buf[:n], err)
	}
	if n, err := unix.Lgetxattr(e.p("l"), "trusted.l", buf); err != nil || string(buf[:n]) != "L" {
		t.Errorf("symlink xattr %q %v", buf[:n], err)
	}
	if n, err := unix.Lgetxattr(e.p("null"), "trusted.d", buf); err != nil || string(buf[:n]) != "N" {
		t.Errorf("device xattr %q %v", buf[:n], err)
	}
	if _, err := unix.Getxattr("/target", "trusted.l", buf); err == nil {
		t.Error("xattr set through the symlink")
	}
}

func getfacl(t *testing.T, p string, dflt bool) string {
	t.Helper()
	args := []string{"-n", "-c", "-E", "-p"}
	if dflt {
		args = append(args, "-d")
	} else {
		args = append(args, "-a")
	}
	out, err := exec.Command("getfacl", append(args, p)...).Output()
	if err != nil {
		t.Fatalf("getfacl: %v %s", err, out)
	}
	return string(out)
}

func TestApplyACLs(t *testing.T) {
	if _, err := exec.LookPath("getfacl"); err != nil {
		t.Skip("getfacl not installed")
	}
	e := newEnv(t, Options{})
	f, pieces := reg("/acl/file", 0o660, "x")
	f.ACLs = []bacularec.ACL{{Stream: bacularec.StreamACLLinuxAccess,
		Text: "user::rw-\nuser:1234:rw-\t#effective:rw-\ngroup::r--\ngroup:root:r-x\nmask::rw-\nother::---\n"}}
	e.mustPut(f, pieces...)
	d := dirRec("/acl/", 0o750, 7)
	d.ACLs = []bacularec.ACL{
		{Stream: bacularec.StreamACLLinuxAccess, Text: "user::rwx\ngroup::r-x\ngroup:99:rwx\nmask::rwx\nother::---"},
		{Stream: bacularec.StreamACLLinuxDefault, Text: "user::rwx\nuser:55:r-x\ngroup::r-x\nmask::r-x\nother::---\n"},
	}
	e.mustPut(d)
	// Default ACL on a file: warning only. Unknown name: error, file kept.
	g, pieces := reg("/acl/bad", 0o644, "y")
	g.ACLs = []bacularec.ACL{{Stream: bacularec.StreamACLLinuxDefault, Text: "user::rwx\ngroup::r-x\nother::---"}}
	e.mustPut(g, pieces...)
	h, pieces := reg("/acl/unknown", 0o644, "z")
	h.ACLs = []bacularec.ACL{{Stream: bacularec.StreamACLLinuxAccess, Text: "user::rw-\nuser:no-such-user-xyz:rw-\ngroup::r--\nmask::rw-\nother::r--"}}
	if err := e.put(h, pieces...); !errors.Is(err, ErrACL) {
		t.Errorf("unknown user: %v, want ErrACL", err)
	}
	e.close()
	if got, want := getfacl(t, e.p("acl/file"), false), "user::rw-\nuser:1234:rw-\ngroup::r--\ngroup:0:r-x\nmask::rw-\nother::---\n\n"; got != want {
		t.Errorf("file ACL:\n%s\nwant:\n%s", got, want)
	}
	if got, want := getfacl(t, e.p("acl"), false), "user::rwx\ngroup::r-x\ngroup:99:rwx\nmask::rwx\nother::---\n\n"; got != want {
		t.Errorf("dir ACL:\n%s\nwant:\n%s", got, want)
	}
	if got, want := getfacl(t, e.p("acl"), true), "user::rwx\nuser:55:r-x\ngroup::r-x\nmask::r-x\nother::---\n\n"; got != want {
		t.Errorf("default ACL:\n%s\nwant:\n%s", got, want)
	}
	if st := lstat(t, e.p("acl/file")); st.Mode != sIFREG|0o660 {
		t.Errorf("file mode with ACL %o", st.Mode)
	}
	if st := lstat(t, e.p("acl")); st.Mode != sIFDIR|0o770 || st.Mtim.Sec != 7 { // group bits = mask
		t.Errorf("dir mode with ACL %o mtime %d", st.Mode, st.Mtim.Sec)
	}
	if s := e.w.Stats(); s.Warnings != 1 || s.Errors != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestIncompleteAndNotDecoded(t *testing.T) {
	e := newEnv(t, Options{})
	f, pieces := reg("/cut", 0o644, "partial")
	f.Stat.Size = 1000
	f.Incomplete = true
	if err := e.put(f, pieces...); !errors.Is(err, ErrIncomplete) {
		t.Errorf("incomplete: %v", err)
	}
	g, pieces := reg("/enc", 0o644, "plain")
	g.Stat.Size = 1000
	g.NotDecoded = []bacularec.StreamCount{{Stream: 7, Records: 1, Bytes: 500}}
	if err := e.put(g, pieces...); !errors.Is(err, ErrNotDecoded) {
		t.Errorf("not decoded: %v", err)
	}
	// KindFile without KindFileEnd: reported by Close.
	h, pieces := reg("/open", 0o644, "open")
	e.w.Apply(&bacularec.Item{Kind: bacularec.KindFile, File: h})
	e.w.Apply(&bacularec.Item{Kind: bacularec.KindData, File: h, Data: pieces[0].data})
	err := e.w.Close()
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "/open") {
		t.Errorf("Close: %v", err)
	}
	if testAtomic {
		// Nothing partial is put in place, and no temporary file is left.
		if ents, _ := os.ReadDir(e.root); len(ents) != 0 {
			t.Errorf("atomic mode left %v", ents)
		}
	} else {
		if got := readFile(t, e.p("enc")); got != "plain" {
			t.Errorf("undecoded file padded: %q", got)
		}
		if got := readFile(t, e.p("cut")); got != "partial" {
			t.Errorf("incomplete file: %q", got)
		}
	}
	s := e.w.Stats()
	if s.Incomplete != 2 || s.NotDecoded != 1 || s.Errors != 3 {
		t.Errorf("stats %+v", s)
	}
	if err := e.w.Apply(&bacularec.Item{Kind: bacularec.KindFile, File: f}); !errors.Is(err, ErrClosed) || !IsFatal(err) {
		t.Errorf("Apply after Close: %v", err)
	}
	if e.w.Close() != nil {
		t.Error("second Close")
	}
}

func TestInterleavedJobs(t *testing.T) {
	e := newEnv(t, Options{})
	a, _ := reg("/job1/a", 0o644, "")
	b, _ := reg("/job2/b", 0o644, "")
	a.Type, b.Type = bacularec.TypeReg, bacularec.TypeReg
	ra, rb := make([]byte, 300000), make([]byte, 300000)
	rand.Read(ra)
	rand.Read(rb)
	a.Stat.Size, b.Stat.Size = int64(len(ra)), int64(len(rb))
	apply := func(k bacularec.Kind, f *bacularec.File, off int, data []byte) {
		if err := e.w.Apply(&bacularec.Item{Kind: k, File: f, Offset: int64(off), Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	apply(bacularec.KindFile, a, 0, nil)
	apply(bacularec.KindFile, b, 0, nil)
	for off := 0; off < len(ra); off += 65536 {
		end := min(off+65536, len(ra))
		apply(bacularec.KindData, a, off, ra[off:end])
		apply(bacularec.KindNotice, nil, 0, nil)
		apply(bacularec.KindData, b, off, rb[off:end])
	}
	apply(bacularec.KindFileEnd, b, 0, nil)
	apply(bacularec.KindFileEnd, a, 0, nil)
	e.close()
	if readFile(t, e.p("job1/a")) != string(ra) || readFile(t, e.p("job2/b")) != string(rb) {
		t.Error("interleaved content mixed up")
	}
}

func TestFilterAndStripPrefix(t *testing.T) {
	e := newEnv(t, Options{
		StripPrefix: "/home/bob",
		Filter:      func(f *bacularec.File) bool { return !strings.HasSuffix(f.Path, ".tmp") },
	})
	for _, p := range []string{"/home/bob/doc.txt", "/home/bob/x.tmp", "/home/bobby/y", "/etc/z"} {
		f, pieces := reg(p, 0o644, p)
		e.mustPut(f, pieces...)
	}
	e.mustPut(&bacularec.File{Type: bacularec.TypeLinkSaved, Path: "/home/bob/doc2", Link: "/home/bob/doc.txt"})
	e.mustPut(&bacularec.File{Type: bacularec.TypeLinkSaved, Path: "/home/bob/x2.tmp", Link: "/home/bob/doc.txt"})
	e.mustPut(dirRec("/home/bob/", 0o700, 1))
	e.close()
	for p, want := range map[string]string{"doc.txt": "/home/bob/doc.txt", "doc2": "/home/bob/doc.txt", "home/bobby/y": "/home/bobby/y", "etc/z": "/etc/z"} {
		if got := readFile(t, e.p(p)); got != want {
			t.Errorf("%s: %q", p, got)
		}
	}
	for _, p := range []string{"x.tmp", "x2.tmp", "home/bob"} {
		if _, err := os.Lstat(e.p(p)); !os.IsNotExist(err) {
			t.Errorf("%s exists: %v", p, err)
		}
	}
	if s := e.w.Stats(); s.Skipped != 2 || s.Files != 3 || s.HardLinks != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestOtherKindsIgnored(t *testing.T) {
	e := newEnv(t, Options{})
	job := &bacularec.Job{}
	for _, it := range []bacularec.Item{
		{Kind: bacularec.KindVolume, Volume: &bacularec.VolumeLabel{}},
		{Kind: bacularec.KindJobStart, Job: job},
		{Kind: bacularec.KindNotice, Err: errors.New("x")},
		{Kind: bacularec.KindJobEnd, Job: job},
		{Kind: bacularec.KindData, File: &bacularec.File{Path: "/unknown"}, Data: []byte("x")},
		{Kind: bacularec.KindRaw, File: &bacularec.File{Path: "/unknown"}, Data: []byte("x")},
	} {
		if err := e.w.Apply(&it); err != nil {
			t.Errorf("%v: %v", it.Kind, err)
		}
	}
	odd := &bacularec.File{Type: bacularec.TypeRestoreFirst, Path: "/ro"}
	e.mustPut(odd)
	e.close()
	if s := e.w.Stats(); s.Skipped != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestSync(t *testing.T) {
	e := newEnv(t, Options{Sync: true})
	f, p := reg("/s", 0o644, "synced")
	e.mustPut(f, p...)
	e.close()
	if readFile(t, e.p("s")) != "synced" {
		t.Error("content")
	}
}

func TestPathError(t *testing.T) {
	err := error(&PathError{Op: "create", Path: "/a\nb", Err: errDotDot})
	if got, want := err.Error(), `extract: create "/a\nb": unsafe path: ".." component`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if !errors.Is(err, ErrUnsafePath) || IsFatal(err) {
		t.Error("errors.Is / IsFatal")
	}
	if !IsFatal(&PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}) || IsFatal(&PathError{Op: "chown", Path: "/x", Err: syscall.EPERM}) {
		t.Error("IsFatal errno")
	}
}

// TestUnprivileged runs the whole suite again as nobody when run as root,
// so that the non-root paths are exercised in the same run.
func TestUnprivileged(t *testing.T) {
	if !isRoot || os.Getenv("EXTRACT_UNPRIVILEGED") != "" {
		t.Skip("only as root (re-runs the suite as nobody)")
	}
	if testing.Short() {
		t.Skip("short")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not installed")
	}
	dir, err := os.MkdirTemp("", "extract-nobody")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "extract.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", bin, "-test.run=^Test", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "EXTRACT_UNPRIVILEGED=1", "TMPDIR="+dir)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	t.Logf("as nobody:\n%s", out)
}

// TestACLMatchesSetfacl sets ACLs with setfacl(1) and compares the xattr
// the kernel stores with our encoding of the same text.
func TestACLMatchesSetfacl(t *testing.T) {
	if _, err := exec.LookPath("setfacl"); err != nil {
		t.Skip("setfacl not installed")
	}
	dir := t.TempDir()
	texts := []string{
		"user::rw-\nuser:1234:rw-\ngroup::r--\nmask::rw-\nother::r--\n",
		"user::rwx\nuser:0:r--\nuser:65534:--x\nuser:4000000000:rwx\ngroup::r-x\ngroup:0:rw-\ngroup:100:-w-\nmask::rwx\nother::---\n",
		"user::r--\ngroup::---\ngroup:7:rwx\nmask::r--\nother::r--\n",
		"user::rw-\ngroup::r--\ngroup:root:rw-\nmask::rw-\nother::---\n",
	}
	for i, text := range texts {
		for _, dflt := range []bool{false, true} {
			p := filepath.Join(dir, fmt.Sprint(i, dflt))
			attr := xattrACLAccess
			args := []string{"--set", strings.ReplaceAll(strings.TrimSpace(text), "\n", ",")}
			if dflt {
				if err := os.Mkdir(p, 0o700); err != nil {
					t.Fatal(err)
				}
				attr = xattrACLDefault
				args = append([]string{"-d"}, args...)
			} else if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("setfacl", append(args, p)...).CombinedOutput(); err != nil {
				t.Fatalf("setfacl %v: %v %s", args, err, out)
			}
			buf := make([]byte, 1024)
			n, err := unix.Getxattr(p, attr, buf)
			if err != nil {
				t.Fatalf("getxattr: %v", err)
			}
			out := buf[:n]
			ents, err := parseACL(text, func(string) (uint32, error) { return 0, nil }, func(string) (uint32, error) { return 0, nil })
			if err != nil {
				t.Fatal(err)
			}
			if got := appendACLXattr(nil, ents); !bytes.Equal(got, out) {
				t.Errorf("%q (default %v):\n ours %x\n setfacl %x", text, dflt, got, out)
			}
		}
	}
}

// A path that changes type between the jobs of a chain (accurate Full,
// then Incremental): the later job's entry wins, and the deletion records
// that follow it (a trailing "/" marks a deleted directory) only remove
// what has the deleted type.
func TestTypeChangeAcrossJobs(t *testing.T) {
	e := newEnv(t, Options{Deletions: true})
	// Full: d/swap is a directory with a file; d/file is a file.
	f, pieces := reg("/d/swap/g", 0o644, "in the old directory")
	e.mustPut(f, pieces...)
	e.mustPut(dirRec("/d/swap/", 0o755, 1500000000))
	f, pieces = reg("/d/file", 0o644, "old file")
	e.mustPut(f, pieces...)
	// Incremental: d/swap is now a symlink, d/file a directory; then the
	// deletion records of what the Full had there.
	e.mustPut(symlinkRec("/d/swap", "elsewhere"))
	f, pieces = reg("/d/file/inner", 0o644, "new")
	e.mustPut(f, pieces...)
	e.mustPut(&bacularec.File{Type: bacularec.TypeDeleted, Path: "/d/swap/"})
	e.mustPut(&bacularec.File{Type: bacularec.TypeDeleted, Path: "/d/swap/g"})
	e.mustPut(&bacularec.File{Type: bacularec.TypeDeleted, Path: "/d/file"})
	e.close()
	if target, err := os.Readlink(e.p("d/swap")); err != nil || target != "elsewhere" {
		t.Fatalf("d/swap: %q, %v", target, err)
	}
	if got := readFile(t, e.p("d/file/inner")); got != "new" {
		t.Fatalf("d/file/inner: %q", got)
	}
	if s := e.w.Stats(); s.Deleted != 0 {
		t.Fatalf("deleted %d entries of the wrong type", s.Deleted)
	}

	// A deleted file record leaves a directory the job made at its path.
	e = newEnv(t, Options{Deletions: true})
	f, pieces = reg("/x/new/inner", 0o644, "kept")
	e.mustPut(f, pieces...)
	e.mustPut(&bacularec.File{Type: bacularec.TypeDeleted, Path: "/x/new"})
	e.close()
	if got := readFile(t, e.p("x/new/inner")); got != "kept" {
		t.Fatalf("x/new/inner: %q", got)
	}

	// Without Deletions (bextract's behaviour) a non-empty directory in the
	// way is an error, and it stays.
	e = newEnv(t, Options{})
	f, pieces = reg("/y/dir/z", 0o644, "z")
	e.mustPut(f, pieces...)
	if err := e.put(symlinkRec("/y/dir", "t")); err == nil {
		t.Fatal("non-empty directory replaced without Deletions")
	}
	e.close()
	if got := readFile(t, e.p("y/dir/z")); got != "z" {
		t.Fatalf("y/dir/z: %q", got)
	}
}

// ReplaceSymlink decides whether a symbolic link in the way of a file's
// parent gives way to a directory; the link is never followed either way.
func TestReplaceSymlink(t *testing.T) {
	outside := t.TempDir()
	e := newEnv(t, Options{ReplaceSymlink: func(rel string) bool { return rel == "old" }})
	e.mustPut(symlinkRec("/old", outside))
	e.mustPut(symlinkRec("/new", outside))
	f, pieces := reg("/old/f", 0o644, "replaced")
	e.mustPut(f, pieces...)
	f, pieces = reg("/new/f", 0o644, "refused")
	if err := e.put(f, pieces...); !errors.Is(err, ErrUnsafePath) {
		t.Fatalf("file under a link that is not replaced: %v", err)
	}
	e.close()
	if got := readFile(t, e.p("old/f")); got != "replaced" {
		t.Fatalf("old/f: %q", got)
	}
	if st := lstat(t, e.p("old")); st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Fatalf("old: mode %o", st.Mode)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("written outside: %v", entries)
	}
}
