//go:build linux

package crypt

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// srcTree writes an encrypted target: each file encrypted for "/"+rel.
func srcTree(t *testing.T, key Key) (root string, files map[string][]byte) {
	t.Helper()
	root = t.TempDir()
	files = map[string][]byte{
		"etc/passwd":              []byte("root:x:0:0::/root:/bin/sh\n"),
		"etc/empty":               nil,
		"srv/data/big.bin":        pattern(2*ChunkSize + 17),
		"srv/data/deep/a/b/c.txt": []byte("deep"),
		"srv/tampered.db":         pattern(ChunkSize + 5),
		"usr/bin/tool":            []byte("#!/bin/sh\necho hi\n"),
	}
	modes := map[string]fs.FileMode{
		"etc/passwd":   0o644,
		"etc/empty":    0o600,
		"usr/bin/tool": 0o755 | fs.ModeSetuid,
	}
	for rel, plain := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		ct := encrypt(t, key, "/"+rel, plain, 0)
		if rel == "srv/tampered.db" {
			ct[headerSize+encChunk+3] ^= 1 // second chunk: the first decrypts fine
		}
		if err := os.WriteFile(p, ct, 0o640); err != nil {
			t.Fatal(err)
		}
		if m, ok := modes[rel]; ok {
			if err := os.Chmod(p, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Symlink("../etc/passwd", filepath.Join(root, "srv/link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent/target", filepath.Join(root, "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "srv/fifo"), 0o620); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "srv/data"), 0o750|fs.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "etc"), 0o555); err != nil { // read-only dir: filled, then locked
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(root, "etc"), 0o755) })
	// Distinct times, set deepest first so that they stay.
	var paths []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error { paths = append(paths, p); return err })
	for j := len(paths) - 1; j >= 0; j-- {
		at := time.Date(2020, 1, 2, 3, 4, 5, 600+j, time.UTC)
		mt := time.Date(2021, 6, 7, 8, 9, 10, 123456700+j, time.UTC)
		if err := lchtimes(paths[j], at, mt); err != nil {
			t.Fatal(err)
		}
	}
	return root, files
}

func TestDecryptTree(t *testing.T) {
	key := newTestKey(t)
	src, files := srcTree(t, key)
	if os.Geteuid() == 0 {
		if err := os.Lchown(filepath.Join(src, "etc/passwd"), 1234, 5678); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(filepath.Join(src, "srv/link"), 4321, 8765); err != nil {
			t.Fatal(err)
		}
	}
	// Snapshot the source metadata before reading changes the atimes.
	srcMeta := map[string]meta{}
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		fi, _ := os.Lstat(p)
		rel, _ := filepath.Rel(src, p)
		srcMeta[rel] = metaOf(fi)
		return nil
	})
	for rel, m := range srcMeta { // the walk changed the directories' atimes
		lchtimes(filepath.Join(src, rel), m.atime, m.mtime)
	}

	dst := filepath.Join(t.TempDir(), "restore")
	t.Cleanup(func() { os.Chmod(filepath.Join(dst, "etc"), 0o755) }) // 0555 like its source
	var reported []error
	st, err := DecryptTree(context.Background(), src, dst, NewKeyring(newTestKey(t), key), TreeOptions{
		Errorf: func(err error) { reported = append(reported, err) },
	})
	if !errors.Is(err, ErrTreeFailed) {
		t.Fatalf("DecryptTree: %v", err)
	}
	if len(reported) != 1 || !errors.Is(reported[0], ErrAuth) || !strings.Contains(reported[0].Error(), filepath.Join(src, "srv/tampered.db")) {
		t.Fatalf("reported %v", reported)
	}
	var pe *fs.PathError
	if !errors.As(reported[0], &pe) || pe.Path != filepath.Join(src, "srv/tampered.db") {
		t.Fatalf("not a PathError naming the file: %v", reported[0])
	}
	var wantBytes int64
	for rel, plain := range files {
		if rel != "srv/tampered.db" {
			wantBytes += int64(len(plain))
		}
	}
	want := TreeStats{Files: 5, Dirs: 9, Symlinks: 2, Special: 1, Failed: 1, Bytes: wantBytes}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	// Metadata first: reading the files and directories would change
	// their access times. Directories got theirs after their contents.
	for rel, want := range srcMeta {
		fi, err := os.Lstat(filepath.Join(dst, rel))
		if rel == "srv/tampered.db" {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("tampered file in dst: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		got := metaOf(fi)
		if got.mode != want.mode {
			t.Errorf("%s: mode %v, want %v", rel, got.mode, want.mode)
		}
		if !got.mtime.Equal(want.mtime) || !got.atime.Equal(want.atime) {
			t.Errorf("%s: times %v %v, want %v %v", rel, got.atime, got.mtime, want.atime, want.mtime)
		}
		if os.Geteuid() == 0 && (got.uid != want.uid || got.gid != want.gid) {
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, got.uid, got.gid, want.uid, want.gid)
		}
	}
	for rel, plain := range files {
		if rel == "srv/tampered.db" {
			continue
		}
		got, err := os.ReadFile(filepath.Join(dst, rel))
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%s: %d bytes, %v", rel, len(got), err)
		}
	}
	if l, err := os.Readlink(filepath.Join(dst, "srv/link")); err != nil || l != "../etc/passwd" {
		t.Errorf("symlink: %q, %v", l, err)
	}
	if l, err := os.Readlink(filepath.Join(dst, "dangling")); err != nil || l != "/nonexistent/target" {
		t.Errorf("dangling symlink: %q, %v", l, err)
	}
	n := 0
	err = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tempPrefix) {
			t.Errorf("temporary file left: %s", p)
		}
		n++
		return nil
	})
	if err != nil || n != len(srcMeta)-1 {
		t.Errorf("dst has %d entries, want %d: %v", n, len(srcMeta)-1, err)
	}
	if os.Geteuid() == 0 {
		if m := srcMeta["etc/passwd"]; m.uid != 1234 || m.gid != 5678 {
			t.Errorf("source owner not set up: %d:%d", m.uid, m.gid)
		}
	}

	// Again into the same dst: everything is replaced, nothing fails but
	// the tampered file.
	os.Chmod(filepath.Join(dst, "etc"), 0o755)
	if st2, err := DecryptTree(context.Background(), src, dst, NewKeyring(key), TreeOptions{}); !errors.Is(err, ErrTreeFailed) || st2 != want {
		t.Errorf("second run: %+v, %v", st2, err)
	}
}

func TestDecryptTreeSubtreeAndFile(t *testing.T) {
	key := newTestKey(t)
	src, files := srcTree(t, key)
	ring := NewKeyring(key)
	dst := t.TempDir()

	// A subtree: its files were encrypted for /srv/data/...
	st, err := DecryptTree(context.Background(), filepath.Join(src, "srv/data"), filepath.Join(dst, "data"), ring, TreeOptions{PathPrefix: "/srv/data"})
	if err != nil || st.Files != 2 || st.Failed != 0 {
		t.Fatalf("subtree: %+v, %v", st, err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "data/deep/a/b/c.txt")); string(got) != "deep" {
		t.Fatalf("subtree file: %q", got)
	}
	// Without the prefix the paths do not match.
	var reported []string
	st, err = DecryptTree(context.Background(), filepath.Join(src, "srv/data"), filepath.Join(dst, "data2"), ring, TreeOptions{
		Errorf: func(err error) { reported = append(reported, err.Error()) },
	})
	if !errors.Is(err, ErrTreeFailed) || st.Failed != 2 || st.Files != 0 || len(reported) != 2 {
		t.Fatalf("subtree without prefix: %+v, %v, %q", st, err, reported)
	}

	// One file.
	out := filepath.Join(dst, "passwd")
	st, err = DecryptTree(context.Background(), filepath.Join(src, "etc/passwd"), out, ring, TreeOptions{PathPrefix: "/etc/passwd"})
	if err != nil || st.Files != 1 || st.Bytes != int64(len(files["etc/passwd"])) {
		t.Fatalf("file: %+v, %v", st, err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, files["etc/passwd"]) {
		t.Fatalf("file content %q", got)
	}
	if _, err := DecryptTree(context.Background(), filepath.Join(src, "etc/passwd"), out+"2", ring, TreeOptions{}); !errors.Is(err, ErrNoPath) {
		t.Fatalf("file without PathPrefix: %v", err)
	}
	// A failing single file leaves nothing, not even over an existing file.
	if err := os.WriteFile(out+"3", []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err = DecryptTree(context.Background(), filepath.Join(src, "srv/tampered.db"), out+"3", ring, TreeOptions{PathPrefix: "/srv/tampered.db"})
	if !errors.Is(err, ErrTreeFailed) || st.Failed != 1 {
		t.Fatalf("tampered file: %+v, %v", st, err)
	}
	if got, _ := os.ReadFile(out + "3"); string(got) != "keep" {
		t.Fatalf("existing file changed: %q", got)
	}
	ents, _ := os.ReadDir(dst)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}

	if _, err := DecryptTree(context.Background(), filepath.Join(src, "missing"), out, ring, TreeOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing src: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := DecryptTree(ctx, src, filepath.Join(dst, "canceled"), ring, TreeOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}

// A FIFO in place of the key file is refused without blocking.
func TestKeyFromFileFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := KeyFromFile(fifo); !errors.Is(err, ErrKeyFormat) {
		t.Errorf("FIFO: %v", err)
	}
}
