package snapshot

import (
	"os"

	"golang.org/x/sys/unix"
)

// exchange swaps the directories at a and b atomically (both must exist,
// on one file system), so that b is never missing.
func exchange(a, b string) error {
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
		return &os.LinkError{Op: "renameat2 RENAME_EXCHANGE", Old: a, New: b, Err: err}
	}
	return nil
}
