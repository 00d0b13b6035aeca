//go:build !linux

package snapshot

import (
	"errors"
	"os"
)

// exchange needs renameat2(RENAME_EXCHANGE), which only Linux has; btrfs
// only exists there too.
func exchange(a, b string) error {
	return &os.LinkError{Op: "exchange", Old: a, New: b, Err: errors.ErrUnsupported}
}
