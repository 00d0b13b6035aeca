package crypt

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// TreeOptions tunes DecryptTree.
type TreeOptions struct {
	// PathPrefix is the logical path of src: a file at src/a/b was
	// encrypted for PathPrefix/a/b (cleaned, made absolute). Empty means
	// "/", right for src being the root of an encrypted target; set it
	// (for example "/etc") to decrypt a subtree of one. For a single file
	// it is the file's own logical path and must be set.
	PathPrefix string
	// Errorf receives each entry that failed, as an *fs.PathError naming
	// the source path; the walk goes on. May be nil.
	Errorf func(error)
}

// TreeStats counts what DecryptTree did.
type TreeStats struct {
	Files    int   // regular files decrypted
	Dirs     int   // directories restored, metadata included
	Symlinks int   // symbolic links copied
	Special  int   // FIFOs and device nodes recreated
	Failed   int   // entries reported to TreeOptions.Errorf
	Bytes    int64 // plaintext bytes written
}

// tempPrefix starts the names of the temporary files of DecryptTree; only
// a killed process leaves them behind.
const tempPrefix = ".brc-decrypt."

// DecryptTree restores src, an encrypted file or directory tree as an
// encrypted target writes it, to dst, for recovery. Each regular file is
// decrypted (keys from ring) for its logical path (see
// TreeOptions.PathPrefix). Symbolic links are copied as they are, with
// their targets unresolved; directories, FIFOs and device nodes are made
// anew. Each entry gets the mode of its source (setuid, setgid and sticky
// included), its owner when running as root, and its access and
// modification times; a directory's after its contents, dst's own
// included (dst is made if missing, an existing directory is reused).
// Hard links are not kept: each name is decrypted as a file.
//
// Every file is written to a temporary name in its directory, synced and
// renamed over its destination, so a file that fails (tampered, wrong
// key ...) leaves no output and an existing dst file is either replaced
// whole or left alone. A failing entry is passed to opt.Errorf and counted
// in TreeStats.Failed and the walk goes on; the error is then ErrTreeFailed
// (wrapped) if nothing worse happened. An error about src or dst itself,
// or ctx ending, stops the walk.
func DecryptTree(ctx context.Context, src, dst string, ring *Keyring, opt TreeOptions) (TreeStats, error) {
	t := &tree{ctx: ctx, ring: ring, opt: opt, chown: os.Geteuid() == 0}
	fi, err := os.Lstat(src)
	if err != nil {
		return t.stats, err
	}
	logical := path.Join("/", filepath.ToSlash(opt.PathPrefix))
	if fi.IsDir() {
		if err := os.MkdirAll(dst, 0o700); err != nil {
			return t.stats, err
		}
		err = t.dir(src, dst, logical, fi)
	} else {
		if opt.PathPrefix == "" {
			return t.stats, ErrNoPath
		}
		t.entry(src, dst, logical, fi)
		if err = ctx.Err(); err == nil && t.stats.Failed == 0 {
			err = syncDir(filepath.Dir(dst)) // make the rename durable
		}
	}
	if err == nil && t.stats.Failed > 0 {
		err = fmt.Errorf("%w: %d failed", ErrTreeFailed, t.stats.Failed)
	}
	return t.stats, err
}

type tree struct {
	ctx   context.Context
	ring  *Keyring
	opt   TreeOptions
	chown bool
	stats TreeStats
}

func (t *tree) fail(p, op string, err error) {
	if t.ctx.Err() != nil {
		return // the walk stops with ctx's error: not this entry's fault
	}
	t.stats.Failed++
	if t.opt.Errorf != nil {
		t.opt.Errorf(&fs.PathError{Op: op, Path: p, Err: err})
	}
}

// dir restores directory src as dst, which exists or is made. It returns
// only ctx's error; failures are reported.
func (t *tree) dir(src, dst, logical string, fi fs.FileInfo) error {
	if err := os.Mkdir(dst, 0o700); err != nil {
		// An existing symbolic link is not followed.
		if st, serr := os.Lstat(dst); serr != nil || !st.IsDir() {
			t.fail(src, "mkdir", err)
			return nil
		}
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.fail(src, "readdir", err)
	}
	for _, e := range ents {
		if err := t.ctx.Err(); err != nil {
			return err
		}
		s, d, l := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), path.Join(logical, e.Name())
		info, err := e.Info()
		if err != nil {
			t.fail(s, "lstat", err)
			continue
		}
		if info.IsDir() {
			if err := t.dir(s, d, l, info); err != nil {
				return err
			}
			continue
		}
		t.entry(s, d, l, info)
	}
	// Sync first: the times must be set after the last change inside.
	if err := syncDir(dst); err != nil {
		t.fail(src, "sync", err)
		return nil
	}
	if err := t.meta(dst, metaOf(fi)); err != nil {
		t.fail(src, "metadata", err)
		return nil
	}
	t.stats.Dirs++
	return nil
}

// entry restores a non-directory.
func (t *tree) entry(src, dst, logical string, fi fs.FileInfo) {
	m := metaOf(fi)
	switch {
	case fi.Mode().IsRegular():
		n, err := t.file(src, dst, logical, m)
		if err != nil {
			t.fail(src, "decrypt", err)
			return
		}
		t.stats.Files++
		t.stats.Bytes += n
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err == nil {
			err = t.place(dst, m, func(tmp string) error { return os.Symlink(target, tmp) })
		}
		if err != nil {
			t.fail(src, "symlink", err)
			return
		}
		t.stats.Symlinks++
	case fi.Mode()&(fs.ModeNamedPipe|fs.ModeDevice|fs.ModeCharDevice) != 0:
		if err := t.place(dst, m, func(tmp string) error { return mknod(tmp, m) }); err != nil {
			t.fail(src, "mknod", err)
			return
		}
		t.stats.Special++
	default:
		t.fail(src, "restore", fmt.Errorf("crypt: unsupported file type %v", fi.Mode().Type()))
	}
}

// file decrypts src into a temporary file renamed to dst once complete
// and synced, and returns the plaintext size.
func (t *tree) file(src, dst, logical string, m meta) (n int64, err error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	r, err := NewReader(in, t.ring, logical)
	if err != nil {
		return 0, err
	}
	// CreateTemp makes the file 0600: no one else sees the plaintext
	// before the final mode is set.
	out, err := os.CreateTemp(filepath.Dir(dst), tempPrefix+"*")
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	if n, err = io.Copy(out, ctxReader{t.ctx, r}); err != nil {
		return 0, err
	}
	if err := out.Sync(); err != nil {
		return 0, err
	}
	if err := out.Close(); err != nil {
		return 0, err
	}
	if err := t.meta(out.Name(), m); err != nil {
		return 0, err
	}
	return n, os.Rename(out.Name(), dst)
}

// place makes a non-regular entry with mk under a temporary name, sets
// its metadata and renames it to dst, replacing what was there.
func (t *tree) place(dst string, m meta, mk func(tmp string) error) error {
	tmp := filepath.Join(filepath.Dir(dst), tempPrefix+rand.Text())
	if err := mk(tmp); err != nil {
		return err
	}
	err := t.meta(tmp, m)
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// meta sets owner (as root), mode and times, in that order: chown clears
// setuid and setgid, and chmod would change the times. Symbolic links
// have no mode of their own.
func (t *tree) meta(p string, m meta) error {
	link := m.mode&fs.ModeSymlink != 0
	if t.chown && m.uid >= 0 {
		if err := os.Lchown(p, m.uid, m.gid); err != nil {
			return err
		}
	}
	if !link {
		if err := os.Chmod(p, m.mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return err
		}
	}
	return lchtimes(p, m.atime, m.mtime)
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
