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

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/crypt"
)

func testKey(t *testing.T) crypt.Key {
	t.Helper()
	var k crypt.Key
	rand.Read(k[:])
	return k
}

// encRun replicates paths to Encrypt(Mirror(root)).
func encRun(t *testing.T, root string, key crypt.Key, mopt MirrorOptions, eopt EncryptOptions, paths ...string) Stats {
	t.Helper()
	tg := Encrypt(NewMirror(root, mopt), key, eopt)
	e := &Engine{Dests: []Destination{{Name: "enc", Target: tg}}}
	sum, err := e.Run(context.Background(), source(paths...))
	if err != nil {
		t.Fatal(err)
	}
	if ts := sum.Targets[0]; !ts.OK() {
		t.Fatalf("target: %+v", ts)
	}
	return tg.(StatsReporter).Stats()
}

// plainScan describes what DecryptTree restores of every entry under
// root: type and mode, owner, mtime, size and content hash, link target
// (not ACLs nor xattrs, which DecryptTree does not copy).
func plainScan(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode=%o uid=%d gid=%d", st.Mode, st.Uid, st.Gid)
		if d.Type()&fs.ModeSymlink == 0 && rel != "." && rel != "tmp" && rel != "tmp/brc-fixture-src" {
			desc += fmt.Sprintf(" mtime=%d", st.Mtim.Sec)
		}
		switch d.Type() & fs.ModeType {
		case 0:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" size=%d sha=%s", st.Size, sha(b)[:16])
		case fs.ModeSymlink:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Encrypt(Mirror) holds ciphertext only; decrypted, it is what extract
// restores (content, modes, owners, times, links; holes become zeros).
func TestEncryptedMirrorDecrypts(t *testing.T) {
	for _, set := range [][]string{
		{"plain-md5"}, {"sparse-gzip-sha256"}, {"aclxattr-md5"}, {"span.1", "span.2"},
		{"accurate-1-full", "accurate-2-incr", "accurate-3-diff"},
	} {
		t.Run(strings.Join(set, "+"), func(t *testing.T) {
			paths := vols(set...)
			ref := extractRef(t, paths)
			root := tempDir(t)
			key := testKey(t)
			encRun(t, root, key, MirrorOptions{Verify: true}, EncryptOptions{Verify: true}, paths...)

			// Every regular file is ciphertext: not one holds its
			// plaintext, every one starts with the format's magic.
			refFiles := map[string][]byte{}
			filepath.WalkDir(ref, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					b, _ := os.ReadFile(p)
					rel, _ := filepath.Rel(ref, p)
					refFiles[rel] = b
				}
				return nil
			})
			filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return nil
				}
				b, _ := os.ReadFile(p)
				rel, _ := filepath.Rel(root, p)
				if !bytes.HasPrefix(b, []byte("BRCENC\x01")) {
					t.Errorf("%s: not encrypted", rel)
				}
				if plain := refFiles[rel]; len(plain) >= 16 && bytes.Contains(b, plain[:16]) {
					t.Errorf("%s: plaintext found in the ciphertext", rel)
				}
				return nil
			})

			dec := filepath.Join(tempDir(t), "dec")
			var failed []string
			_, err := DecryptTarget(context.Background(), root, dec, crypt.NewKeyring(key),
				crypt.TreeOptions{Errorf: func(err error) { failed = append(failed, err.Error()) }})
			if err != nil || len(failed) > 0 {
				t.Fatalf("decrypt: %v %q", err, failed)
			}
			diffTrees(t, plainScan(t, ref), plainScan(t, dec))
		})
	}
}

// A file moved to another path on the target no longer decrypts; a
// tampered one fails, named, and the rest is decrypted.
func TestEncryptedMovedAndTampered(t *testing.T) {
	paths := vols("plain-md5")
	root := tempDir(t)
	key := testKey(t)
	encRun(t, root, key, MirrorOptions{}, EncryptOptions{}, paths...)
	var regs []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		var st syscall.Stat_t
		if err == nil && d.Type().IsRegular() && syscall.Lstat(p, &st) == nil && st.Nlink == 1 && st.Size > 200 {
			regs = append(regs, p)
		}
		return nil
	})
	if len(regs) < 2 {
		t.Fatalf("regular files: %q", regs)
	}
	moved, tampered := regs[0], regs[1]
	if err := os.Rename(moved, moved+".moved"); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(tampered, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("X"), 100)
	f.Close()

	dec := filepath.Join(tempDir(t), "dec")
	var failed []string
	stats, err := DecryptTarget(context.Background(), root, dec, crypt.NewKeyring(key),
		crypt.TreeOptions{Errorf: func(err error) {
			if !errors.Is(err, crypt.ErrAuth) {
				t.Errorf("unexpected error: %v", err)
			}
			var pe *fs.PathError
			errors.As(err, &pe)
			failed = append(failed, pe.Path)
		}})
	if !errors.Is(err, crypt.ErrTreeFailed) || stats.Failed != 2 || stats.Files == 0 {
		t.Fatalf("DecryptTarget = %+v, %v", stats, err)
	}
	if len(failed) != 2 || !(failed[0] == moved+".moved" && failed[1] == tampered || failed[1] == moved+".moved" && failed[0] == tampered) {
		t.Errorf("failed %q, want %s.moved and %s", failed, moved, tampered)
	}
	rel, _ := filepath.Rel(root, moved)
	if _, err := os.Lstat(filepath.Join(dec, rel+".moved")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("moved file decrypted: %v", err)
	}
}

// skip_unchanged: the same jobs again write no content; a file whose
// plaintext changed, or whose copy was tampered with, is rewritten.
func TestEncryptedSkipUnchanged(t *testing.T) {
	paths := vols("sparse-md5")
	ref := extractRef(t, paths)
	key := testKey(t)
	cat, err := OpenCatalog(tempDir(t) + "/c.db")
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	for _, withIndex := range []bool{false, true} {
		t.Run(fmt.Sprint("index=", withIndex), func(t *testing.T) {
			root := tempDir(t)
			mopt := MirrorOptions{SkipUnchanged: true, Verify: true}
			if withIndex {
				mopt.Index = cat.Index(root)
			}
			eopt := EncryptOptions{SkipUnchanged: true, Verify: true}
			first := encRun(t, root, key, mopt, eopt, paths...)
			if first.Bytes == 0 || first.Skipped != 0 {
				t.Fatalf("first run %+v", first)
			}
			t.Logf("first %+v", first)
			before := plainScan(t, root)
			second := encRun(t, root, key, mopt, eopt, paths...)
			if second.Bytes != 0 || second.Skipped == 0 || second.Errors != 0 {
				t.Fatalf("second run %+v", second)
			}
			if after := plainScan(t, root); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("unchanged run changed the target:\n%v\n%v", before, after)
			}

			// Tamper with the copy of the largest file (same size): its
			// authentication fails, so it is written again.
			var victim string
			var size int64
			filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if fi, err := d.Info(); err == nil && d.Type().IsRegular() && fi.Size() > size {
					victim, size = p, fi.Size()
				}
				return nil
			})
			f, err := os.OpenFile(victim, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte("tampered"), size/2)
			f.Close()
			third := encRun(t, root, key, mopt, eopt, paths...)
			t.Logf("second %+v third %+v", second, third)
			if third.Bytes == 0 || third.Skipped != second.Skipped-1 || third.Errors != 0 {
				t.Errorf("after tampering %+v (second %+v)", third, second)
			}
			dec := filepath.Join(tempDir(t), "dec")
			if _, err := DecryptTarget(context.Background(), root, dec, crypt.NewKeyring(key), crypt.TreeOptions{}); err != nil {
				t.Fatal(err)
			}
			diffTrees(t, plainScan(t, ref), plainScan(t, dec))
		})
	}
}

// encPieces is a Content over data in encPieces of n bytes.
type encPieces struct {
	data []byte
	n    int
	off  int
}

func (p *encPieces) Next() (int64, []byte, error) {
	if p.off >= len(p.data) {
		return 0, nil, io.EOF
	}
	off := p.off
	p.off = min(p.off+p.n, len(p.data))
	return int64(off), p.data[off:p.off], nil
}

// skip_unchanged with a plaintext that changed at various places, size
// kept: the new content is what decrypts, the same content writes nothing.
func TestEncryptedSkipChangedPlaintext(t *testing.T) {
	key := testKey(t)
	ring := crypt.NewKeyring(key)
	ctx := context.Background()
	base := make([]byte, 3*crypt.ChunkSize+1234)
	rand.Read(base)
	for _, at := range []int{-1, 0, crypt.ChunkSize - 1, crypt.ChunkSize, 2*crypt.ChunkSize + 5, len(base) - 1} {
		t.Run(fmt.Sprint("at=", at), func(t *testing.T) {
			root := tempDir(t)
			tg := Encrypt(NewMirror(root, MirrorOptions{SkipUnchanged: true}), key,
				EncryptOptions{SkipUnchanged: true, Verify: true})
			put := func(id uint32, data []byte) Stats {
				job := &bacularec.Job{JobID: id, Level: 'I', Started: true, Ended: true, Status: 'T'}
				f := &bacularec.File{Job: job, Type: bacularec.TypeReg, Path: "/d/f",
					Stat: bacularec.Stat{Mode: 0o100640, Size: int64(len(data)), Mtime: 1_700_000_000 + int64(id)}}
				if err := tg.Begin(ctx, job); err != nil {
					t.Fatal(err)
				}
				if err := tg.Put(ctx, f, &encPieces{data: data, n: 10_000}); err != nil {
					t.Fatalf("Put: %v", err)
				}
				if err := tg.End(ctx, job); err != nil {
					t.Fatalf("End: %v", err)
				}
				got, err := os.ReadFile(filepath.Join(root, "d/f"))
				if err != nil {
					t.Fatal(err)
				}
				r, err := crypt.NewReader(bytes.NewReader(got), ring, "/d/f")
				if err != nil {
					t.Fatal(err)
				}
				plain, err := io.ReadAll(r)
				if err != nil || !bytes.Equal(plain, data) {
					t.Fatalf("decrypted %d bytes, %v; want the %d bytes put", len(plain), err, len(data))
				}
				return tg.(StatsReporter).Stats()
			}
			s1 := put(1, base)
			v2 := bytes.Clone(base)
			if at >= 0 {
				v2[at] ^= 0xff
			}
			s2 := put(2, v2)
			wrote := s2.Bytes - s1.Bytes
			if at < 0 && (wrote != 0 || s2.Skipped != 1) || at >= 0 && (wrote != int64(len(base)) || s2.Skipped != 0) {
				t.Errorf("second Put wrote %d bytes, skipped %d", wrote, s2.Skipped)
			}
			if s2.Errors != 0 {
				t.Errorf("errors: %+v", s2)
			}
		})
	}
}
