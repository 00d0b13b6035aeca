package bacularec

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by the Reader wrap one of these (test with
// errors.Is) inside a *FormatError that says where it happened. A volume
// that ends inside a block or record wraps io.ErrUnexpectedEOF.
var (
	ErrChecksum       = errors.New("bacularec: block checksum mismatch")
	ErrBlockID        = errors.New("bacularec: bad block id")
	ErrBlockLength    = errors.New("bacularec: block length out of range")
	ErrEncryptedBlock = errors.New("bacularec: encrypted block (volume encryption is not supported)")
	ErrRecordLength   = errors.New("bacularec: record length out of range")
	ErrContinuation   = errors.New("bacularec: continuation record does not match its record")
	ErrSession        = errors.New("bacularec: record of another session")
	ErrLabel          = errors.New("bacularec: bad label")
	ErrAttributes     = errors.New("bacularec: bad attributes record")
	ErrData           = errors.New("bacularec: bad data record")
	ErrCompression    = errors.New("bacularec: bad compressed data")
	ErrUnknownCodec   = errors.New("bacularec: compression algorithm not supported")
	ErrDigestMismatch = errors.New("bacularec: digest mismatch")
	ErrOrphanData     = errors.New("bacularec: data record without attributes")
	ErrSkipped        = errors.New("bacularec: damaged data skipped")
	// ErrShortBlock is a notice, not a loss: a volume that ended inside a
	// block because it ran out of space; Bacula writes the whole block
	// again at the start of the next volume.
	ErrShortBlock = errors.New("bacularec: short block at the end of the volume (written again on the next volume)")
	ErrNoVolume   = errors.New("bacularec: no volume given")
	ErrClosed     = errors.New("bacularec: reader closed")
)

// FormatError reports bad input and where it is: the volume, the block
// number from the block header (numbers restart per session, so Offset is
// the exact place; 0 when not even the header could be read) and the byte
// offset in the volume of the block, or of the record at fault.
type FormatError struct {
	Volume string
	Block  uint32
	Offset int64
	Err    error
}

func (e *FormatError) Error() string {
	v := e.Volume
	if v == "" {
		v = "-"
	}
	return fmt.Sprintf("volume %s, block %d, offset %d: %v", v, e.Block, e.Offset, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }

// DigestError is the File.DigestErr of a file whose content does not match
// its digest record.
type DigestError struct {
	Path string
	Algo string
	Want []byte // from the volume
	Got  []byte // of the content read
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("bacularec: %s: %s digest mismatch: volume has %s, content has %s",
		e.Path, e.Algo, hex.EncodeToString(e.Want), hex.EncodeToString(e.Got))
}

func (e *DigestError) Unwrap() error { return ErrDigestMismatch }
