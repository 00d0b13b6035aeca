package extract

import (
	"errors"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/openbrc/brc/bacularec"
)

// Errors returned (wrapped in a *PathError where a file is concerned) by
// the Writer. Test with errors.Is.
var (
	// ErrUnsafePath: the path would leave the root: it has a ".." or NUL,
	// names the root itself for a non-directory, or crosses a symbolic link
	// (or a hard-link target does).
	ErrUnsafePath = errors.New("extract: unsafe path")
	// ErrLinkTarget: the first name of a hard link was not extracted
	// (filtered out, failed, or missing from the input).
	ErrLinkTarget = errors.New("extract: hard link target not extracted")
	// ErrNotDecoded: some of the file's content was in streams that could
	// not be decoded (encrypted, unknown compression, Win32 ...); the file
	// holds only the decoded part.
	ErrNotDecoded = errors.New("extract: content not decoded")
	// ErrIncomplete: the input ended before the file did; it is left
	// partially written, without its metadata.
	ErrIncomplete = errors.New("extract: file incomplete in input")
	// ErrACL: an ACL's text could not be converted.
	ErrACL = errors.New("extract: bad ACL")
	// ErrRootGone: the root directory was removed during extraction (fatal).
	ErrRootGone = errors.New("extract: root directory removed")
	// ErrClosed: Apply or Close after Close (fatal).
	ErrClosed = errors.New("extract: writer closed")
	// ErrUnsupported: extraction is not implemented on this OS (fatal).
	ErrUnsupported = errors.New("extract: not supported on this system")
)

// TempPrefix starts the temporary names of Options.Atomic. An interrupted
// process leaves them behind; anything so named may be removed once no
// Writer runs on the root.
const TempPrefix = ".brc-tmp."

// PathError records a failure to restore one file.
type PathError struct {
	Op   string // "create", "write", "mkdir", "link", "symlink", "mknod", "chown", "chmod", "acl", "utimes", "delete", "extract" ...
	Path string // the path as recorded in the backup (File.Path)
	Err  error
}

func (e *PathError) Error() string {
	msg := strings.TrimPrefix(e.Err.Error(), "extract: ")
	return "extract: " + e.Op + " " + quotePath(e.Path) + ": " + msg
}

func (e *PathError) Unwrap() error { return e.Err }

// quotePath leaves printable UTF-8 paths alone and quotes the others
// (Bacula paths are raw bytes: newlines, control characters, Latin-1 ...).
func quotePath(p string) string {
	if !utf8.ValidString(p) {
		return strconv.Quote(p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '"' {
			return strconv.Quote(p)
		}
	}
	return p
}

// IsFatal reports whether err means that going on with the extraction is
// pointless: the Writer is closed, its root is gone, or the file system is
// full, read-only, failing or out of file descriptors. Any other error
// returned by Apply concerns a single file: count it and go on.
func IsFatal(err error) bool {
	if err == nil {
		return false
	}
	for _, e := range []error{ErrClosed, ErrRootGone, ErrUnsupported,
		syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EIO,
		syscall.EMFILE, syscall.ENFILE, syscall.EBADF} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Options tune a Writer. The zero value restores everything the process is
// allowed to: content, modes, times, ACLs, xattrs, and, when running as
// root, ownership and device nodes.
type Options struct {
	// NoOwner disables chown. Ownership is only restored by root (euid 0):
	// an unprivileged process keeps the files as its own.
	NoOwner bool
	// NoDevices skips character and block device nodes (counted in
	// Stats.Skipped). Without it mknod is tried and, when not permitted,
	// the node is skipped the same way.
	NoDevices bool
	// NoACLs and NoXattrs skip ACLs and extended attributes.
	NoACLs, NoXattrs bool
	// Deletions honours TypeDeleted records (accurate mode) by removing the
	// path: a file, or a directory with everything below it. Without it
	// they are counted in Stats.Skipped.
	Deletions bool
	// Sync flushes the file system holding the root (syncfs) in Close, so
	// every restored file and directory is on stable storage when Close
	// returns. Writes themselves are never synced one by one.
	Sync bool
	// Atomic makes every file appear whole or not at all: regular files
	// are written under a temporary name (TempPrefix...) in their
	// directory and renamed into place by Commit (and Close); symbolic
	// links, hard links and special files are made under a temporary name
	// and renamed at once. A file that fails leaves no temporary name
	// behind. With Sync as well, Commit flushes the file system before the
	// renames, so a crash never leaves a file without its content under
	// its name. Files with content that could not be decoded are not put
	// in place (ErrNotDecoded).
	Atomic bool
	// Hold, with Atomic, is asked for each finished regular file; true
	// keeps it under its temporary name, out of Commit, until Switch puts
	// all such files in place together (or DropHeld or Close removes
	// them).
	Hold func(f *bacularec.File) bool
	// KeepDirTimes puts back, at Close, the times of existing directories
	// whose entries the Writer changed but for which no record came: a
	// later job that adds a file to a directory it does not itself carry
	// leaves that directory's times as the backup had them.
	KeepDirTimes bool
	// Placed, when set, is called with each regular file once it is at
	// its final name, and what the file system says of it.
	Placed func(f *bacularec.File, info Info)
	// ReplaceSymlink is asked when a symbolic link stands where a file's
	// parent directory must be created; true replaces the link by a
	// directory (the link is removed, never followed). Nil, or false,
	// refuses the file (ErrUnsafePath). Run answers true for links made by
	// an earlier job of the same run: a directory that was a symbolic link
	// in an earlier backup.
	ReplaceSymlink func(rel string) bool
	// StripPrefix is removed from the front of every path (and hard-link
	// target) that starts with it at a component boundary, like Bacula's
	// strip_prefix; other paths are kept whole.
	StripPrefix string
	// Filter, when set, is called once per file before anything of it is
	// written; false skips the file and its content (Stats.Skipped). For
	// regular files it is called at the KindFile item, so File.ACLs and
	// File.Xattrs are not known yet.
	Filter func(*bacularec.File) bool
	// Logf receives warnings (metadata that could not be applied, skipped
	// files). Nil discards them.
	Logf func(format string, args ...any)
}

// Stats counts what a Writer did.
type Stats struct {
	Files      int64 // regular files restored (including empty files and FIFOs/raw devices read as data)
	Dirs       int64 // directory records applied
	Symlinks   int64
	HardLinks  int64
	Specials   int64 // FIFOs and device nodes
	Deleted    int64 // paths removed for TypeDeleted records
	Bytes      int64 // content bytes received for restored files
	HoleBytes  int64 // of Bytes, all-zero blocks left as holes instead of written
	Skipped    int64 // files filtered out or not restorable here (sockets, devices, unknown types)
	NotDecoded int64 // files with undecoded content (ErrNotDecoded)
	Incomplete int64 // files cut short by the end of the input (ErrIncomplete)
	Warnings   int64 // metadata not applied (xattrs, default ACL on a non-directory, ...)
	Errors     int64 // errors returned by Apply and Close (one per file at most)
}

// isDataType reports whether files of type t are restored from their
// content: regular files, and FIFOs or raw devices read as data.
func isDataType(t bacularec.FileType) bool {
	switch t {
	case bacularec.TypeReg, bacularec.TypeRegEmpty, bacularec.TypeFIFO, bacularec.TypeRaw:
		return true
	}
	return false
}
