package replica

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/crypt"
	"github.com/openbrc/brc/internal/extract"
)

// treeWatch reports, through inotify, what happens to the entries of
// the directories under a root that are not directories: an open, a read,
// a write, a metadata change, a creation, a rename or a removal of a file.
// A stat makes no event, which is the point: it tells a file that was not
// opened from one that was, whatever code path did it.
type treeWatch struct {
	fd   int
	dirs map[int32]string
}

func watchTree(t *testing.T, root string) *treeWatch {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	w := &treeWatch{fd: fd, dirs: map[int32]string{}}
	t.Cleanup(func() { unix.Close(fd) })
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		wd, err := unix.InotifyAddWatch(fd, p, unix.IN_ALL_EVENTS|unix.IN_DONT_FOLLOW)
		if err != nil {
			return err
		}
		w.dirs[int32(wd)] = p
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// fileEvents returns the events on non-directories since the last call,
// as "path: OPEN|MODIFY...".
func (w *treeWatch) fileEvents(t *testing.T) []string {
	t.Helper()
	names := []struct {
		m uint32
		s string
	}{{unix.IN_OPEN, "OPEN"}, {unix.IN_ACCESS, "ACCESS"}, {unix.IN_MODIFY, "MODIFY"}, {unix.IN_ATTRIB, "ATTRIB"},
		{unix.IN_CLOSE_WRITE, "CLOSE_WRITE"}, {unix.IN_CLOSE_NOWRITE, "CLOSE_NOWRITE"}, {unix.IN_CREATE, "CREATE"},
		{unix.IN_MOVED_FROM, "MOVED_FROM"}, {unix.IN_MOVED_TO, "MOVED_TO"}, {unix.IN_DELETE, "DELETE"}}
	var out []string
	var buf [64 << 10]byte
	for {
		n, err := unix.Read(w.fd, buf[:])
		if err == unix.EAGAIN || n == 0 {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				t.Fatal("inotify queue overflow")
			}
			if name == "" || ev.Mask&unix.IN_ISDIR != 0 {
				continue // the directory itself, or a directory in it
			}
			var what []string
			for _, nm := range names {
				if ev.Mask&nm.m != 0 {
					what = append(what, nm.s)
				}
			}
			out = append(out, filepath.Join(w.dirs[ev.Wd], name)+": "+strings.Join(what, "|"))
		}
	}
}

// encIdx is an encrypted Mirror with both state indexes in a catalog, as
// replicad builds it.
type encIdx struct {
	root string
	cat  *Catalog
	key  crypt.Key
	ring *crypt.Keyring // nil: the key's
	mopt MirrorOptions
	eopt EncryptOptions
}

func newEncIdx(t *testing.T, key crypt.Key) *encIdx {
	t.Helper()
	cat, err := OpenCatalog(filepath.Join(tempDir(t), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	root := tempDir(t)
	return &encIdx{root: root, cat: cat, key: key,
		mopt: MirrorOptions{SkipUnchanged: true, Verify: true, Index: cat.Index(root)},
		eopt: EncryptOptions{SkipUnchanged: true, Verify: true, Index: cat.EncryptedIndex(root)}}
}

// target returns a fresh Encrypt(Mirror) over the same root and catalog.
func (x *encIdx) target() (Target, *Mirror) {
	m := NewMirror(x.root, x.mopt)
	eopt := x.eopt
	eopt.Keyring = x.ring
	return Encrypt(m, x.key, eopt), m
}

// run replicates the volumes with a fresh target: its Stats and the
// Mirror's.
func (x *encIdx) run(t *testing.T, paths ...string) (Stats, Stats) {
	t.Helper()
	tg, m := x.target()
	e := &Engine{Dests: []Destination{{Name: "enc", Target: tg}}}
	sum, err := e.Run(context.Background(), source(paths...))
	if err != nil {
		t.Fatal(err)
	}
	if ts := sum.Targets[0]; !ts.OK() {
		t.Fatalf("target: %+v", ts)
	}
	return tg.(StatsReporter).Stats(), m.Stats()
}

// regulars returns the regular files under root (first names of hard
// links only) by path under it.
func regulars(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	seen := map[uint64]bool{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		var st syscall.Stat_t
		if err == nil && d.Type().IsRegular() && syscall.Lstat(p, &st) == nil && !seen[st.Ino] {
			seen[st.Ino] = true
			rel, _ := filepath.Rel(root, p)
			out[rel] = p
		}
		return nil
	})
	return out
}

// jobRegulars returns the paths of the regular files the volumes hold.
func jobRegulars(t *testing.T, paths []string) map[string]bool {
	t.Helper()
	m := NewMemory()
	e := &Engine{Dests: []Destination{{Name: "mem", Target: m}}}
	if _, err := e.Run(context.Background(), source(paths...)); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for p, f := range m.Files() {
		if f.Type == bacularec.TypeReg {
			out[p] = true
		}
	}
	if len(out) == 0 {
		t.Fatal("no regular file in the job")
	}
	return out
}

// inodeNames returns the names under root of each regular file.
func inodeNames(t *testing.T, root string) map[uint64][]string {
	t.Helper()
	out := map[uint64][]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		var st syscall.Stat_t
		if err == nil && d.Type().IsRegular() && syscall.Lstat(p, &st) == nil {
			rel, _ := filepath.Rel(root, p)
			out[st.Ino] = append(out[st.Ino], rel)
		}
		return nil
	})
	return out
}

// decryptTree restores root with ring and fails on any file that does
// not decrypt.
func decryptTree(t *testing.T, root string, ring *crypt.Keyring) string {
	t.Helper()
	dec := filepath.Join(tempDir(t), "dec")
	var failed []string
	if _, err := DecryptTarget(context.Background(), root, dec, ring,
		crypt.TreeOptions{Errorf: func(err error) { failed = append(failed, err.Error()) }}); err != nil || len(failed) > 0 {
		t.Fatalf("decrypt: %v %q", err, failed)
	}
	return dec
}

// Replaying the same jobs onto an encrypted Mirror with its index: no
// byte written, every regular file counted skipped, and not one file of
// the target opened (inotify sees every open; a stat makes no event).
// A file changed behind the index's back is opened, and repaired.
func TestEncryptedIndexUnchangedReplay(t *testing.T) {
	for _, tc := range []struct{ set, replay []string }{
		{[]string{"sparse-md5"}, nil},
		{[]string{"plain-md5"}, nil},
		{[]string{"aclxattr-md5"}, nil},
		// A sequence: the jobs before the last one change files that the
		// last one holds again; the last job is the one replayed.
		{[]string{"accurate-1-full", "accurate-2-incr", "accurate-3-diff"}, []string{"accurate-3-diff"}},
	} {
		t.Run(strings.Join(tc.set, "+"), func(t *testing.T) {
			paths := vols(tc.set...)
			replay := paths
			if tc.replay != nil {
				replay = vols(tc.replay...)
			}
			ref := extractRef(t, paths)
			x := newEncIdx(t, testKey(t))
			first, _ := x.run(t, paths...)
			if first.Bytes == 0 || first.Errors != 0 {
				t.Fatalf("first run %+v", first)
			}
			before := plainScan(t, x.root)
			regs := regulars(t, x.root)
			// The index vouches for every regular file now on the target
			// (under one of its names, for a hard link).
			idx := x.eopt.Index
			for _, names := range inodeNames(t, x.root) {
				found := false
				for _, rel := range names {
					if _, ok, err := idx.Get("/" + rel); err == nil && ok {
						found = true
					}
				}
				if !found {
					t.Fatalf("%q: no entry in the encrypted index", names)
				}
			}

			w := watchTree(t, x.root)
			second, m := x.run(t, replay...)
			if ev := w.fileEvents(t); len(ev) > 0 {
				t.Errorf("unchanged replay touched files of the target:\n%s", strings.Join(ev, "\n"))
			}
			if second.Bytes != 0 || m.Bytes != 0 || second.Errors != 0 {
				t.Errorf("unchanged replay wrote: %+v (Mirror %+v)", second, m)
			}
			// Every regular-file record of the job was skipped: at least
			// one per file now on the target, for a Full.
			if second.Skipped == 0 || tc.replay == nil && second.Skipped < int64(len(regs)) {
				t.Errorf("skipped %d, want at least the %d regular files", second.Skipped, len(regs))
			}
			if after := plainScan(t, x.root); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("unchanged replay changed the target:\n%v\n%v", before, after)
			}

			// Behind the index's back, the largest file is corrupted in
			// place and its mtime put back: the ctime tells. It is read
			// (the inotify watch proves the seam sees opens) and
			// rewritten; nothing else is opened.
			var victim string
			var size int64
			for p := range jobRegulars(t, replay) {
				if fi, err := os.Stat(filepath.Join(x.root, p)); err == nil && fi.Size() > size {
					victim, size = filepath.Join(x.root, p), fi.Size()
				}
			}
			fi, _ := os.Stat(victim)
			f, err := os.OpenFile(victim, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte("corrupted"), size/2)
			f.Close()
			if err := os.Chtimes(victim, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
			w.fileEvents(t)
			third, m3 := x.run(t, replay...)
			var touched []string
			for _, ev := range w.fileEvents(t) {
				if !strings.HasPrefix(ev, victim+": ") && !strings.Contains(ev, extract.TempPrefix) {
					touched = append(touched, ev)
				}
			}
			if len(touched) > 0 {
				t.Errorf("repairing %s touched other files:\n%s", victim, strings.Join(touched, "\n"))
			}
			if third.Bytes == 0 || m3.Bytes == 0 || third.Skipped != second.Skipped-1 || third.Errors != 0 {
				t.Errorf("after corruption %+v (Mirror %+v), second %+v", third, m3, second)
			}
			diffTrees(t, plainScan(t, ref), plainScan(t, decryptTree(t, x.root, crypt.NewKeyring(x.key))))

			// And the next replay is a stat per file again.
			w.fileEvents(t)
			fourth, m4 := x.run(t, replay...)
			if ev := w.fileEvents(t); len(ev) > 0 || fourth.Bytes != 0 || m4.Bytes != 0 || fourth.Skipped != second.Skipped {
				t.Errorf("replay after the repair: %+v %+v\n%s", fourth, m4, strings.Join(ev, "\n"))
			}
		})
	}
}

// encFile is a regular file for put.
type encFile struct {
	path  string
	data  []byte
	mtime int64
}

// put runs one job of files on tg (a piece every 10,000 bytes).
func put(t *testing.T, tg Target, id uint32, files ...encFile) Stats {
	t.Helper()
	ctx := context.Background()
	job := &bacularec.Job{JobID: id, Level: 'I', Started: true, Ended: true, Status: 'T'}
	if err := tg.Begin(ctx, job); err != nil {
		t.Fatal(err)
	}
	for _, ef := range files {
		mt := ef.mtime
		if mt == 0 {
			mt = 1_700_000_000
		}
		f := &bacularec.File{Job: job, Type: bacularec.TypeReg, Path: ef.path,
			Stat: bacularec.Stat{Mode: 0o100640, Size: int64(len(ef.data)), Mtime: mt, Atime: mt}}
		if err := tg.Put(ctx, f, &encPieces{data: ef.data, n: 10_000}); err != nil {
			t.Fatalf("Put %s: %v", ef.path, err)
		}
	}
	if err := tg.End(ctx, job); err != nil {
		t.Fatalf("End: %v", err)
	}
	return tg.(StatsReporter).Stats()
}

// decryptFile returns the plaintext of the target's file at backed-up
// path p.
func decryptFile(t *testing.T, root, p string, ring *crypt.Keyring) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	r, err := crypt.NewReader(bytes.NewReader(b), ring, p)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return plain
}

// encryptFor returns data encrypted with key for the logical path p.
func encryptFor(t *testing.T, key crypt.Key, p string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := crypt.NewWriter(&b, key, p)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// A file changed in the next job is rewritten, wherever the change (the
// unchanged spans before it read back from the copy); a copy replaced or
// corrupted behind the index's back is found by its stat and repaired.
func TestEncryptedIndexChanged(t *testing.T) {
	key := testKey(t)
	ring := crypt.NewKeyring(key)
	base := make([]byte, 3*ChunkSize+1234)
	rand.Read(base)
	const p = "/d/f"
	for _, at := range []int{0, ChunkSize - 1, ChunkSize, 2*ChunkSize + 5, len(base) - 1, -1} {
		t.Run(fmt.Sprint("at=", at), func(t *testing.T) {
			x := newEncIdx(t, key)
			tg, _ := x.target()
			s1 := put(t, tg, 1, encFile{path: p, data: base})
			ent, ok, _ := x.eopt.Index.Get(p)
			if !ok || len(ent.Chunks) != 4 || ent.Plain != int64(len(base)) || ent.KeyID != key.ID() {
				t.Fatalf("entry after the first job: %v %+v", ok, ent)
			}
			v2 := bytes.Clone(base)
			if at >= 0 {
				v2[at] ^= 0xff
			} else {
				v2 = append(v2, "more"...) // another size
			}
			s2 := put(t, tg, 2, encFile{path: p, data: v2})
			if got := decryptFile(t, x.root, p, ring); !bytes.Equal(got, v2) {
				t.Fatalf("decrypted %d bytes, want the %d bytes of the second job", len(got), len(v2))
			}
			if s2.Bytes-s1.Bytes != int64(len(v2)) || s2.Skipped != 0 || s2.Errors != 0 {
				t.Errorf("changed file: %+v after %+v", s2, s1)
			}
			ent2, ok, _ := x.eopt.Index.Get(p)
			var st syscall.Stat_t
			syscall.Stat(filepath.Join(x.root, p), &st)
			if !ok || ent2.Ino != st.Ino || ent2.Ctime != st.Ctim.Nano() || ent2.Plain != int64(len(v2)) || ent2.Salt == ent.Salt {
				t.Errorf("entry after the change: %v %+v (file ino %d)", ok, ent2, st.Ino)
			}
			// The same content again: kept.
			s3 := put(t, tg, 3, encFile{path: p, data: v2})
			if s3.Bytes != s2.Bytes || s3.Skipped != 1 {
				t.Errorf("unchanged: %+v after %+v", s3, s2)
			}
		})
	}

	t.Run("behind-our-back", func(t *testing.T) {
		x := newEncIdx(t, key)
		tg, _ := x.target()
		v1 := base
		v3 := bytes.Clone(base)
		v3[ChunkSize+7] ^= 1
		put(t, tg, 1, encFile{path: p, data: v1})
		dst := filepath.Join(x.root, p)
		for _, tc := range []struct {
			name   string
			tamper func()
		}{
			// Another valid file, for the same path and key, same size:
			// only the stat tells it from the one indexed.
			{"replaced", func() {
				tmp := dst + ".x"
				if err := os.WriteFile(tmp, encryptFor(t, key, p, v3), 0o640); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, dst); err != nil {
					t.Fatal(err)
				}
			}},
			// Rewritten in place with another valid ciphertext, mtime
			// put back.
			{"rewritten-in-place", func() {
				fi, _ := os.Stat(dst)
				if err := os.WriteFile(dst, encryptFor(t, key, p, v3), 0o640); err != nil {
					t.Fatal(err)
				}
				os.Chtimes(dst, fi.ModTime(), fi.ModTime())
			}},
			{"corrupted", func() {
				f, _ := os.OpenFile(dst, os.O_WRONLY, 0)
				f.WriteAt([]byte("garbage"), 2*ChunkSize)
				f.Close()
			}},
			{"truncated", func() {
				os.Truncate(dst, 3*ChunkSize)
			}},
		} {
			tc.tamper()
			before := tg.(StatsReporter).Stats()
			s := put(t, tg, 2, encFile{path: p, data: v1})
			if got := decryptFile(t, x.root, p, crypt.NewKeyring(key)); !bytes.Equal(got, v1) {
				t.Fatalf("%s: the target's file decrypts to %d other bytes, not repaired", tc.name, len(got))
			}
			if s.Bytes-before.Bytes != int64(len(v1)) || s.Skipped != before.Skipped || s.Errors != 0 {
				t.Errorf("%s: %+v after %+v", tc.name, s, before)
			}
			// Repaired and indexed again: the next job keeps it.
			s2 := put(t, tg, 3, encFile{path: p, data: v1})
			if s2.Bytes != s.Bytes || s2.Skipped != s.Skipped+1 {
				t.Errorf("%s: after the repair %+v, then %+v", tc.name, s, s2)
			}
		}
	})

	// Metadata changed only: applied, the copy kept and its entry
	// following the new stat (the next job is a stat again).
	t.Run("metadata", func(t *testing.T) {
		x := newEncIdx(t, key)
		tg, _ := x.target()
		put(t, tg, 1, encFile{path: p, data: base, mtime: 1_700_000_000})
		var st1 syscall.Stat_t
		syscall.Stat(filepath.Join(x.root, p), &st1)
		s2 := put(t, tg, 2, encFile{path: p, data: base, mtime: 1_700_000_100})
		var st2 syscall.Stat_t
		syscall.Stat(filepath.Join(x.root, p), &st2)
		if s2.Skipped != 1 || st2.Ino != st1.Ino || st2.Mtim.Sec != 1_700_000_100 {
			t.Fatalf("metadata only: %+v, ino %d -> %d, mtime %d", s2, st1.Ino, st2.Ino, st2.Mtim.Sec)
		}
		ent, ok, _ := x.eopt.Index.Get(p)
		if !ok || ent.Mtime != st2.Mtim.Nano() || ent.Ctime != st2.Ctim.Nano() {
			t.Fatalf("entry after the metadata change: %v %+v", ok, ent)
		}
		w := watchTree(t, x.root)
		s3 := put(t, tg, 3, encFile{path: p, data: base, mtime: 1_700_000_100})
		if ev := w.fileEvents(t); len(ev) > 0 || s3.Skipped != 2 || s3.Bytes != s2.Bytes {
			t.Errorf("after the metadata change: %+v\n%s", s3, strings.Join(ev, "\n"))
		}
	})

	// The same path twice in a job: the last content is what the target
	// holds, and what the index says.
	t.Run("twice-in-a-job", func(t *testing.T) {
		x := newEncIdx(t, key)
		tg, _ := x.target()
		v2 := bytes.Clone(base)
		v2[0] ^= 1
		put(t, tg, 1, encFile{path: p, data: base}, encFile{path: p, data: v2})
		put(t, tg, 2, encFile{path: p, data: v2})
		if got := decryptFile(t, x.root, p, ring); !bytes.Equal(got, v2) {
			t.Fatal("the target holds the first content")
		}
		s := put(t, tg, 3, encFile{path: p, data: base})
		if got := decryptFile(t, x.root, p, ring); !bytes.Equal(got, base) || s.Errors != 0 {
			t.Fatalf("changed back: %+v", s)
		}
	})
}

// plainHashes returns every plain BLAKE3 a clear Mirror's index could hold
// of data: of the whole, of each ChunkSize span, and the index's own sum.
func plainHashes(data []byte) [][32]byte {
	out := [][32]byte{blake3.Sum256(data)}
	for off := 0; off < len(data); off += ChunkSize {
		out = append(out, blake3.Sum256(data[off:min(off+ChunkSize, len(data))]))
	}
	h := newHasher()
	h.Write(data)
	sum, _ := h.finish(int64(len(data)))
	return append(out, sum)
}

// The catalog holds no plain BLAKE3 of any file replicated to an
// encrypted target; its hashes are keyed: recomputed with the key they
// match, with another key they do not, and another key's catalog holds
// others.
func TestEncryptedIndexNoPlainHashes(t *testing.T) {
	paths := vols("sparse-md5", "plain-md5")
	ref := extractRef(t, paths)
	key, other := testKey(t), testKey(t)
	x := newEncIdx(t, key)
	x.run(t, paths...)
	y := newEncIdx(t, other)
	y.run(t, paths...)

	plain := map[string][]byte{}
	filepath.WalkDir(ref, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(ref, p)
			plain["/"+rel] = b
		}
		return nil
	})
	if len(plain) < 10 {
		t.Fatalf("reference: %d files", len(plain))
	}
	kx, ky := newKeyedChunks(key), newKeyedChunks(other)
	checked, spansChecked := 0, 0
	for p, data := range plain {
		ex, ok, err := x.eopt.Index.Get(p)
		if err != nil || !ok {
			continue // a second name of a hard link
		}
		ey, ok, _ := y.eopt.Index.Get(p)
		if !ok {
			t.Fatalf("%s: in one catalog only", p)
		}
		checked++
		kx.start(ex.Salt, p)
		kx.Write(data)
		if got := kx.finish(); fmt.Sprint(got) != fmt.Sprint(ex.Chunks) {
			t.Errorf("%s: the entry's hashes are not the keyed hashes of the plaintext", p)
		}
		ky.start(ex.Salt, p)
		ky.Write(data)
		for i, c := range ky.finish() {
			spansChecked++
			if c == ex.Chunks[i] || c == ey.Chunks[i] && ey.Salt == ex.Salt || ex.Chunks[i] == ey.Chunks[i] {
				t.Errorf("%s: span %d hashes the same with another key", p, i)
			}
		}
	}
	if checked < 10 || spansChecked < 10 {
		t.Fatalf("checked %d files, %d spans", checked, spansChecked)
	}

	for _, c := range []*Catalog{x.cat, y.cat} {
		path := c.db.Path()
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		db, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for p, data := range plain {
			for _, h := range plainHashes(data) {
				if bytes.Contains(db, h[:]) {
					t.Errorf("%s: the catalog holds a plain BLAKE3 of %s", filepath.Base(path), p)
				}
			}
		}
	}
}

// After a key rotation, entries keyed with the old key are not trusted:
// without the old key nothing is skipped, every file is rewritten with
// the new one; with the old key in the keyring unchanged copies are
// compared by decryption, kept, and indexed with the new key.
func TestEncryptedIndexKeyRotation(t *testing.T) {
	paths := vols("sparse-md5")
	k1, k2, k3 := testKey(t), testKey(t), testKey(t)
	x := newEncIdx(t, k1)
	first, _ := x.run(t, paths...)
	n := len(regulars(t, x.root))

	x.key = k2
	second, m2 := x.run(t, paths...)
	if second.Skipped != 0 || second.Bytes != first.Bytes || m2.Bytes == 0 || second.Errors != 0 {
		t.Errorf("new key, old key unknown: %+v (Mirror %+v), first %+v", second, m2, first)
	}
	decryptTree(t, x.root, crypt.NewKeyring(k2)) // fails on any file left with k1

	w := watchTree(t, x.root)
	again, _ := x.run(t, paths...)
	if ev := w.fileEvents(t); len(ev) > 0 || again.Skipped < int64(n) || again.Bytes != 0 {
		t.Errorf("new key, unchanged: %+v\n%s", again, strings.Join(ev, "\n"))
	}

	// k3, with k2 in the ring: entries of k2 are not used, the copies
	// (k2) are decrypted, found unchanged, kept and indexed with k3.
	x.key, x.ring = k3, crypt.NewKeyring(k3, k2)
	third, m3 := x.run(t, paths...)
	opened := 0
	for _, ev := range w.fileEvents(t) {
		if strings.Contains(ev, "OPEN") {
			opened++
		}
	}
	if third.Skipped < int64(n) || third.Bytes != 0 || m3.Bytes != 0 || opened < n {
		t.Errorf("k3 with k2 in the ring: %+v (Mirror %+v), %d opens for %d files", third, m3, opened, n)
	}
	for _, names := range inodeNames(t, x.root) {
		found := false
		for _, rel := range names {
			if e, ok, _ := x.eopt.Index.Get("/" + rel); ok {
				found = true
				if e.KeyID != k3.ID() {
					t.Errorf("/%s: entry with key id %x, want k3's", rel, e.KeyID)
				}
			}
		}
		if !found {
			t.Errorf("%q: no entry", names)
		}
	}
	fourth, _ := x.run(t, paths...)
	if ev := w.fileEvents(t); len(ev) > 0 || fourth.Skipped < int64(n) || fourth.Bytes != 0 {
		t.Errorf("k3 indexed: %+v\n%s", fourth, strings.Join(ev, "\n"))
	}
}

// Encrypted retention with the index: an unchanged replay makes no
// version and opens nothing; a changed file keeps its previous version.
func TestEncryptedIndexRetention(t *testing.T) {
	key := testKey(t)
	x := newEncIdx(t, key)
	p := "/d/f"
	v1 := make([]byte, ChunkSize+10)
	rand.Read(v1)
	newTarget := func() Target {
		m := NewMirror(x.root, x.mopt)
		return Encrypt(NewRetention(m, 3, nil, RetentionOptions{}), key, x.eopt)
	}
	put(t, newTarget(), 1, encFile{path: p, data: v1})
	w := watchTree(t, x.root)
	s := put(t, newTarget(), 2, encFile{path: p, data: v1})
	if ev := w.fileEvents(t); len(ev) > 0 || s.Skipped != 1 || s.Bytes != 0 {
		t.Errorf("unchanged: %+v\n%s", s, strings.Join(ev, "\n"))
	}
	if _, err := os.Lstat(filepath.Join(x.root, VersionsDir)); err == nil {
		vs, _ := ListVersions(x.root, p)
		if len(vs) > 0 {
			t.Errorf("versions of an unchanged file: %v", vs)
		}
	}
	v2 := bytes.Clone(v1)
	v2[ChunkSize+3] ^= 1
	time.Sleep(1100 * time.Millisecond) // versions are named to the second
	s = put(t, newTarget(), 3, encFile{path: p, data: v2})
	if got := decryptFile(t, x.root, p, crypt.NewKeyring(key)); !bytes.Equal(got, v2) || s.Bytes != int64(len(v2)) {
		t.Fatalf("changed: %+v", s)
	}
	vs, err := ListVersions(x.root, p)
	if err != nil || len(vs) != 1 {
		t.Fatalf("versions: %v %v", vs, err)
	}
}

// Verification decrypts what is in place (authenticated) and compares
// its keyed hashes with those of what was written: a file replaced
// before it is verified by another authentic ciphertext, for the same
// path and key, fails, and loses its index entry.
func TestEncryptedVerifyKeyed(t *testing.T) {
	key := testKey(t)
	x := newEncIdx(t, key)
	tg, _ := x.target()
	v, ok := tg.(*encryptedStatsCloser)
	if !ok {
		t.Fatalf("Encrypt(Mirror) is a %T", tg)
	}
	enc := v.encrypted
	ctx := context.Background()
	job := &bacularec.Job{JobID: 1, Level: 'F', Started: true, Ended: true, Status: 'T'}
	if err := tg.Begin(ctx, job); err != nil {
		t.Fatal(err)
	}
	const p = "/d/f"
	v1 := make([]byte, ChunkSize+100)
	rand.Read(v1)
	f := &bacularec.File{Job: job, Type: bacularec.TypeReg, Path: p, Stat: bacularec.Stat{Mode: 0o100640, Size: int64(len(v1))}}
	if err := tg.Put(ctx, f, &encPieces{data: v1, n: 10_000}); err != nil {
		t.Fatal(err)
	}
	if len(enc.verify) != 1 {
		t.Fatalf("%d files to verify", len(enc.verify))
	}
	enc.com.commitPending() // in place, entry written: not verified yet
	if _, ok, _ := x.eopt.Index.Get(p); !ok {
		t.Fatal("no entry once in place")
	}
	v2 := bytes.Clone(v1)
	v2[ChunkSize+1] ^= 1
	dst := filepath.Join(x.root, p)
	if err := os.WriteFile(dst+".x", encryptFor(t, key, p, v2), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dst+".x", dst); err != nil {
		t.Fatal(err)
	}
	err := tg.End(ctx, job)
	if fes := FileErrors(err); len(fes) != 1 || fes[0].Path != p || !errors.Is(err, ErrVerify) {
		t.Fatalf("End: %v", err)
	}
	if _, ok, _ := x.eopt.Index.Get(p); ok {
		t.Error("the entry of a file that failed verification is kept")
	}
	if s := tg.(StatsReporter).Stats(); s.Errors != 1 {
		t.Errorf("stats %+v", s)
	}

}
