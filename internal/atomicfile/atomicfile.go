// Package atomicfile replaces small files (state, journals, reports) so
// that a reader, or a crash, sees the old content or the new one whole.
package atomicfile

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
)

// WriteFile replaces path with b (mode perm) and makes the change durable:
// see Replace, then the directory is synced.
func WriteFile(path string, b []byte, perm os.FileMode) error {
	return WriteFrom(path, bytes.NewReader(b), perm)
}

// WriteFrom is WriteFile with the content read from r: for files too
// large to hold in memory.
func WriteFrom(path string, r io.Reader, perm os.FileMode) error {
	if err := replaceFrom(path, r, perm); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// Replace writes b to a temporary file in path's directory, syncs it and
// renames it over path. The rename is durable only once the directory is
// synced (SyncDir), which a caller replacing several files does once.
func Replace(path string, b []byte, perm os.FileMode) error {
	return replaceFrom(path, bytes.NewReader(b), perm)
}

func replaceFrom(path string, r io.Reader, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// SyncDir flushes directory dir, making renames in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
