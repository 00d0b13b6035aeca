package fastlz

import (
	"errors"
	"fmt"
	"io"
	"slices"
)

// Sentinel errors. Errors returned by this package wrap exactly one of
// these (test with errors.Is) and add context such as the block index and
// the byte offset.
var (
	// ErrBadMagic reports a block header that does not start with "FastLZ\x00".
	ErrBadMagic = errors.New("fastlz: bad block magic")
	// ErrBadBlockType reports a block type nibble other than RAW (0x1) or
	// COMPRESSED (0xC).
	ErrBadBlockType = errors.New("fastlz: bad block type")
	// ErrTooLarge reports a block whose size nibble or sizes exceed the
	// Bareos limits, or whose output would exceed the caller's limit.
	ErrTooLarge = errors.New("fastlz: block too large")
	// ErrTruncated reports input that ends too early. It wraps
	// io.ErrUnexpectedEOF.
	ErrTruncated = fmt.Errorf("fastlz: truncated input: %w", io.ErrUnexpectedEOF)
	// ErrTrailingData reports bytes after the end marker.
	ErrTrailingData = errors.New("fastlz: trailing data after end marker")
	// ErrBadDistance reports a FastLZ match that reaches before the start
	// of the block's output.
	ErrBadDistance = errors.New("fastlz: match distance before start of output")
	// ErrSizeMismatch reports decoded data whose length differs from the
	// announced original size (or a RAW block with compressed != original).
	ErrSizeMismatch = errors.New("fastlz: size mismatch")
	// ErrCorrupt reports other malformed block data: an unknown FastLZ
	// level or an LZ4 block that fails to decode.
	ErrCorrupt = errors.New("fastlz: corrupt block data")
	// ErrUnknownCodec reports a Codec value other than FastLZ or LZ4.
	ErrUnknownCodec = errors.New("fastlz: unknown codec")
)

// maxExpansion bounds the FastLZ output/input ratio: the densest
// instruction (a level-2 match with a 255-chain) produces fewer than 255
// output bytes per input byte. It lets DecodeBlock reject absurd
// original sizes before allocating.
const maxExpansion = 255

// farDistance is the distance base of a level-2 far match.
const farDistance = 8192

// DecodeBlock decodes one FastLZ (level 1 or 2) block src, which must
// decode to exactly original bytes, and appends the result to dst.
//
// dst is grown at most once; no allocation happens when
// cap(dst)-len(dst) >= original. original is trusted only up to a
// plausibility bound (255 output bytes per input byte); callers decoding
// untrusted data should bound it themselves. On error the returned slice
// is dst with its original length (its spare capacity may have been
// overwritten).
func DecodeBlock(dst, src []byte, original int) ([]byte, error) {
	if original < 0 || original/maxExpansion > len(src) {
		return dst, fmt.Errorf("%w: original size %d impossible for %d input bytes",
			ErrSizeMismatch, original, len(src))
	}
	n := len(dst)
	out := slices.Grow(dst, original)[:n+original]
	if err := decodeFastLZ(out[n:], src); err != nil {
		return dst, err
	}
	return out, nil
}

// decodeFastLZ decodes src into out, which must be filled exactly.
func decodeFastLZ(out, src []byte) error {
	if len(src) == 0 {
		if len(out) == 0 {
			return nil
		}
		return fmt.Errorf("%w: empty FastLZ block for %d output bytes", ErrTruncated, len(out))
	}
	level := src[0] >> 5
	if level > 1 {
		return fmt.Errorf("%w: FastLZ level marker %d in first byte %#02x", ErrCorrupt, level, src[0])
	}
	level2 := level == 1
	c := int(src[0] & 0x1f)
	ip, op := 1, 0
	for {
		start := ip - 1 // offset of the instruction byte, for errors
		if c < 0x20 {
			run := c + 1
			if run > len(src)-ip {
				return fmt.Errorf("%w: literal run of %d at input offset %d, %d bytes left",
					ErrTruncated, run, start, len(src)-ip)
			}
			if run > len(out)-op {
				return fmt.Errorf("%w: literal run of %d at input offset %d overruns %d-byte output at %d",
					ErrSizeMismatch, run, start, len(out), op)
			}
			copy(out[op:op+run], src[ip:ip+run])
			ip += run
			op += run
		} else {
			n := c >> 5
			hi := c & 0x1f
			length := n + 2
			if n == 7 {
				for {
					if ip >= len(src) {
						return fmt.Errorf("%w: match length at input offset %d", ErrTruncated, start)
					}
					e := int(src[ip])
					ip++
					length += e
					// Checked per byte so a long 255-chain cannot overflow.
					if length > len(out)-op {
						return fmt.Errorf("%w: match at input offset %d overruns %d-byte output at %d",
							ErrSizeMismatch, start, len(out), op)
					}
					if !level2 || e != 255 {
						break
					}
				}
			}
			if ip >= len(src) {
				return fmt.Errorf("%w: match distance at input offset %d", ErrTruncated, start)
			}
			lo := int(src[ip])
			ip++
			dist := (hi<<8 | lo) + 1
			if level2 && hi == 0x1f && lo == 0xff {
				if len(src)-ip < 2 {
					return fmt.Errorf("%w: far match distance at input offset %d", ErrTruncated, start)
				}
				dist = (int(src[ip])<<8 | int(src[ip+1])) + farDistance
				ip += 2
			}
			if dist > op {
				return fmt.Errorf("%w: distance %d at output offset %d (input offset %d)",
					ErrBadDistance, dist, op, start)
			}
			if length > len(out)-op {
				return fmt.Errorf("%w: match at input offset %d overruns %d-byte output at %d",
					ErrSizeMismatch, start, len(out), op)
			}
			ref := op - dist
			end := op + length
			// Overlapping copy: the source window out[ref:op] grows as op
			// advances, which reproduces byte-by-byte copy semantics.
			for op < end {
				op += copy(out[op:end], out[ref:op])
			}
		}
		if ip >= len(src) {
			break
		}
		c = int(src[ip])
		ip++
	}
	if op != len(out) {
		return fmt.Errorf("%w: FastLZ block decoded to %d bytes, want %d", ErrSizeMismatch, op, len(out))
	}
	return nil
}
