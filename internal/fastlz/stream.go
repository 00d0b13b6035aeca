package fastlz

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/pierrec/lz4/v4"
)

// Codec selects how COMPRESSED blocks of a fastlzlib stream are decoded.
type Codec int

const (
	// FastLZ decodes COMPRESSED blocks as FastLZ level 1/2 (magic "FZFZ").
	FastLZ Codec = 1
	// LZ4 decodes COMPRESSED blocks as raw LZ4 blocks (magics "FZ4L", "FZ4H").
	LZ4 Codec = 2
)

// String returns "FastLZ", "LZ4" or "Codec(n)".
func (c Codec) String() string {
	switch c {
	case FastLZ:
		return "FastLZ"
	case LZ4:
		return "LZ4"
	}
	return fmt.Sprintf("Codec(%d)", int(c))
}

// Container limits, as enforced by Bareos.
const (
	// BlockHeaderSize is the size of a fastlzlib block header.
	BlockHeaderSize = 16
	// BlockSize is the largest block size a header may announce
	// (2^(p+10) with p <= 8) and the block size Bareos writes.
	BlockSize = 262144
	// MaxBlockData is the largest accepted compressed or original size of
	// a single block: BlockSize + BlockSize/10 + 32.
	MaxBlockData = BlockSize + BlockSize/10 + 32

	maxSizeNibble = 8
	typeRaw       = 0x1
	typeComp      = 0xC
)

var blockMagic = [7]byte{'F', 'a', 's', 't', 'L', 'Z', 0}

// DecodeStream decodes a fastlzlib stream body (the bytes after the 12-byte
// Bareos compression header) and appends the decoded data to dst.
//
// c selects the codec of COMPRESSED blocks. max is the largest number of
// bytes DecodeStream may append (a negative max is treated as 0); a block
// that would exceed it is rejected with ErrTooLarge before anything is
// allocated for it. Use BlockSize for records written by Bareos.
//
// Blocks are decoded until the end marker; bytes after it are an error
// (ErrTrailingData). No allocation happens when cap(dst)-len(dst) is at
// least the decoded size. On error the returned slice is dst with its
// original length (its spare capacity may have been overwritten), and the
// error wraps one of the Err* sentinels with the block index and byte
// offset within body.
func DecodeStream(dst, body []byte, c Codec, max int) ([]byte, error) {
	if c != FastLZ && c != LZ4 {
		return dst, fmt.Errorf("%w: %v", ErrUnknownCodec, c)
	}
	if max < 0 {
		max = 0
	}
	base := len(dst)
	out := dst
	off := 0
	for i := 0; ; i++ {
		fail := func(err error, format string, args ...any) ([]byte, error) {
			return dst, blockError(err, i, off, format, args...)
		}
		rest := body[off:]
		if len(rest) < BlockHeaderSize {
			return fail(ErrTruncated, "need %d-byte block header, have %d bytes", BlockHeaderSize, len(rest))
		}
		if [7]byte(rest[:7]) != blockMagic {
			return fail(ErrBadMagic, "got % x", rest[:7])
		}
		typ, p := rest[7]>>4, rest[7]&0x0f
		compressed := binary.LittleEndian.Uint32(rest[8:12])
		original := binary.LittleEndian.Uint32(rest[12:16])
		if compressed == 0 && original == 0 {
			if extra := len(rest) - BlockHeaderSize; extra != 0 {
				return fail(ErrTrailingData, "%d bytes after end marker", extra)
			}
			return out, nil
		}
		if typ != typeRaw && typ != typeComp {
			return fail(ErrBadBlockType, "type byte %#02x", rest[7])
		}
		if p > maxSizeNibble {
			return fail(ErrTooLarge, "size nibble %d (block size 2^%d)", p, int(p)+10)
		}
		if compressed > MaxBlockData || original > MaxBlockData {
			return fail(ErrTooLarge, "compressed %d, original %d, limit %d", compressed, original, MaxBlockData)
		}
		data := rest[BlockHeaderSize:]
		if int(compressed) > len(data) {
			return fail(ErrTruncated, "compressed size %d, %d bytes remaining", compressed, len(data))
		}
		data = data[:compressed]
		orig := int(original)
		if orig > max-(len(out)-base) {
			return fail(ErrTooLarge, "original size %d exceeds output limit %d (already %d)", orig, max, len(out)-base)
		}
		n := len(out)
		out = slices.Grow(out, orig)[:n+orig]
		blk := out[n:]
		switch typ {
		case typeRaw:
			if compressed != original {
				return fail(ErrSizeMismatch, "RAW block with compressed %d != original %d", compressed, original)
			}
			copy(blk, data)
		case typeComp:
			if c == FastLZ {
				if err := decodeFastLZ(blk, data); err != nil {
					return dst, fmt.Errorf("%w (block %d at body offset %d)", err, i, off)
				}
			} else {
				got, err := lz4.UncompressBlock(data, blk)
				if err != nil {
					return fail(ErrCorrupt, "LZ4: %v", err)
				}
				if got != orig {
					return fail(ErrSizeMismatch, "LZ4 block decoded to %d bytes, want %d", got, orig)
				}
			}
		}
		off += BlockHeaderSize + int(compressed)
	}
}

// blockError wraps sentinel with the block index, the block's byte offset
// within the body and a detail message.
func blockError(sentinel error, block, off int, format string, args ...any) error {
	return fmt.Errorf("%w: %s (block %d at body offset %d)",
		sentinel, fmt.Sprintf(format, args...), block, off)
}
