// Package extract rebuilds the files of Bacula backups under a root
// directory, from the Items of package bacularec: the core of
// "replicad extract" (the counterpart of Bacula's bextract) and of the
// replication targets.
//
// A Writer restores a backed-up path /a/b as ROOT/a/b (like bextract's
// where=) with its content, holes, owner, mode (setuid, setgid, sticky
// included), times, POSIX ACLs and extended attributes; symbolic and hard
// links, FIFOs and device nodes; and, on request, accurate-mode deletions.
//
// # Safety
//
// Nothing is ever written outside the root, whatever the volumes say.
// Paths with ".." or NUL are refused with ErrUnsafePath. Every operation
// works on a single name inside a directory file descriptor, and that
// directory is reached from the root without following any symbolic link:
// with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS)
// when the kernel has it, else one O_NOFOLLOW step at a time. A symbolic
// link met on the way, such as an extracted /a -> /etc before a file
// /a/passwd, makes the file fail with ErrUnsafePath. The last name is
// never followed either: files are created with O_EXCL|O_NOFOLLOW,
// metadata is set on the open file or with AT_SYMLINK_NOFOLLOW, and
// deletions unlink without following. Symbolic link targets are written
// verbatim and never resolved.
//
// # Order
//
// Directories arrive after their contents, so a directory's owner, mode,
// ACLs and times are applied in Close, deepest first: its mtime survives
// the creation of its contents, and files of later jobs can still be
// written into it. Directories made for missing parents are 0700 while
// extracting and get 0777 minus umask at Close if no record names them.
//
// # Errors
//
// Apply returns per-file errors (*PathError, wrapping a sentinel such as
// ErrUnsafePath or a syscall error); the caller counts them and goes on.
// IsFatal tells the few that should stop the extraction (no space,
// read-only or failing file system, root removed).
//
// # Performance
//
// Content is written with pwrite straight from the Item's buffer; offsets
// left out by the backup (sparse files) and 4 KiB-aligned all-zero blocks
// stay holes. Directory fds are cached, so a file in a known directory
// costs one openat. Nothing is fsynced unless Options.Sync asks for one
// syncfs at Close.
//
// Only Linux is supported; elsewhere New returns ErrUnsupported.
package extract
