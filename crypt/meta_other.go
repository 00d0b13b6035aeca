//go:build !linux

package crypt

import (
	"io/fs"
	"os"
	"time"
)

func fileOwner(fs.FileInfo) (int, error) { return -1, ErrUnsupported }

type meta struct {
	mode         fs.FileMode
	uid, gid     int
	atime, mtime time.Time
}

func metaOf(fi fs.FileInfo) meta {
	return meta{mode: fi.Mode(), uid: -1, gid: -1, atime: fi.ModTime(), mtime: fi.ModTime()}
}

func lchtimes(path string, atime, mtime time.Time) error {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSymlink != 0 {
		return err // symbolic link times cannot be set portably
	}
	return os.Chtimes(path, atime, mtime)
}

func mknod(string, meta) error { return ErrUnsupported }

func syncDir(string) error { return nil }
