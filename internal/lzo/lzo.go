package lzo

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors returned by Decompress and DecompressN. Every error they return is
// one of these values (compare with == or errors.Is). ErrInputOverrun,
// ErrLookBehind and ErrInputNotConsumed also match ErrCorrupt under
// errors.Is; ErrOutputOverrun does not, because it may equally mean that the
// caller's size limit is too small.
var (
	// ErrCorrupt matches every error caused by a malformed block.
	ErrCorrupt = errors.New("lzo: corrupt input")
	// ErrInputOverrun means the block ended in the middle of an instruction
	// or before its end-of-stream marker (a truncated block).
	ErrInputOverrun = fmt.Errorf("%w: input overrun (truncated block or missing end-of-stream marker)", ErrCorrupt)
	// ErrLookBehind means a match refers to data before the start of the
	// output.
	ErrLookBehind = fmt.Errorf("%w: match distance reaches before the start of the output", ErrCorrupt)
	// ErrInputNotConsumed means bytes follow the end-of-stream marker.
	ErrInputNotConsumed = fmt.Errorf("%w: trailing bytes after the end-of-stream marker", ErrCorrupt)
	// ErrOutputOverrun means the decompressed data would exceed the size
	// limit (the capacity of dst for Decompress, max for DecompressN).
	ErrOutputOverrun = errors.New("lzo: output overrun: decompressed data exceeds the size limit")
)

// Decompress decodes the single LZO1X block in src (ending with its
// end-of-stream marker and followed by nothing) into the storage of dst,
// starting at index 0, and returns dst[:n] where n is the decompressed size.
//
// The size limit is cap(dst): if the output would not fit, Decompress
// returns ErrOutputOverrun. Decompress never allocates, so a caller can
// reuse one buffer for every block, e.g. make([]byte, 0, 65536). The
// contents of dst's storage beyond the returned slice are unspecified
// afterwards, and src must not overlap dst's storage.
//
// On error Decompress returns nil and one of the package's Err values; it
// never panics and never accesses memory outside src and dst[:cap(dst)].
func Decompress(dst, src []byte) ([]byte, error) {
	out := dst[:cap(dst)]
	n, err := decode(out, src)
	if err != nil {
		return nil, err
	}
	return out[:n], nil
}

// DecompressN decodes the single LZO1X block in src into newly allocated
// memory, failing with ErrOutputOverrun if the output would exceed max
// bytes (a negative max is treated as 0). No buffer it allocates is larger
// than max bytes, whatever the input: it starts from an estimate and
// doubles the buffer, up to max, while the output does not fit.
//
// Use Decompress on hot paths to reuse a buffer instead.
func DecompressN(src []byte, max int) ([]byte, error) {
	if max < 0 {
		max = 0
	}
	size := max
	if guess := 4*len(src) + 64<<10; guess < size && len(src) < 1<<28 {
		size = guess
	}
	for {
		buf := make([]byte, size)
		n, err := decode(buf, src)
		if err == ErrOutputOverrun && size < max {
			if size > max/2 {
				size = max
			} else {
				size *= 2
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// Distance bases of the match forms.
const (
	m4Base    = 1 << 14 // smallest M4 distance; exactly this marks the end
	m1FarBase = 2049    // distance base of the 3-byte match after literals

	// extMax caps length extensions so that adding the base lengths
	// cannot overflow an int; no output limit is that large in practice.
	extMax = int(^uint(0)>>1) - 1024
)

// decode decompresses src into out[:len(out)] and returns the output size.
// len(out) is the output limit; bytes of out beyond the returned size may be
// overwritten (the fast paths copy in 8-byte words).
func decode(out, src []byte) (int, error) {
	if len(src) == 0 {
		return 0, ErrInputOverrun
	}
	ip, op := 0, 0
	state := 0 // literals copied by the previous instruction, 4 meaning ">= 4"

	if t := int(src[0]); t > 17 {
		// A first byte above 17 is a literal run of t-17 bytes.
		t -= 17
		ip = 1
		if t > len(out) {
			return 0, ErrOutputOverrun
		}
		if t > len(src)-ip {
			return 0, ErrInputOverrun
		}
		copy(out, src[ip:ip+t])
		ip += t
		op = t
		state = min(t, 4)
	}

	for {
		// Every instruction, including the 3-byte end marker, has at
		// least 3 bytes from its opcode to the end of a valid block. Like
		// liblzo2, fail early when they are missing; this also makes the
		// distance bytes of M1, M2 and M3/M4 without extension safe to read.
		if len(src)-ip < 3 {
			return 0, ErrInputOverrun
		}
		t := int(src[ip])
		ip++
		var length, dist, s int

		switch {
		case t >= 64:
			// M2: 01LDDDSS or 1LLDDDSS, one distance byte.
			dist = int(src[ip])<<3 + (t>>2)&7 + 1
			ip++
			length = t>>5 + 1
			s = t & 3

		case t >= 32:
			// M3: 001LLLLL [ext] LE16.
			length = t & 31
			if length == 0 {
				ext, nip, err := extLength(src, ip)
				if err != nil {
					return 0, err
				}
				ip = nip
				length = 31 + ext
			}
			length += 2
			if len(src)-ip < 2 {
				return 0, ErrInputOverrun
			}
			v := int(binary.LittleEndian.Uint16(src[ip:]))
			ip += 2
			dist = v>>2 + 1
			s = v & 3

		case t >= 16:
			// M4: 0001HLLL [ext] LE16; distance 16384 ends the block.
			length = t & 7
			if length == 0 {
				ext, nip, err := extLength(src, ip)
				if err != nil {
					return 0, err
				}
				ip = nip
				length = 7 + ext
			}
			length += 2
			if len(src)-ip < 2 {
				return 0, ErrInputOverrun
			}
			v := int(binary.LittleEndian.Uint16(src[ip:]))
			ip += 2
			dist = m4Base + (t&8)<<11 + v>>2
			if dist == m4Base {
				if ip != len(src) {
					return 0, ErrInputNotConsumed
				}
				return op, nil
			}
			s = v & 3

		case state == 0:
			// Literal run: 0000LLLL [ext], 4 or more literals.
			length = t
			if length == 0 {
				ext, nip, err := extLength(src, ip)
				if err != nil {
					return 0, err
				}
				ip = nip
				length = 15 + ext
			}
			length += 3
			if length > len(out)-op {
				return 0, ErrOutputOverrun
			}
			if length > len(src)-ip {
				return 0, ErrInputOverrun
			}
			if length <= 16 && len(src)-ip >= 16 && len(out)-op >= 16 {
				copy16(out[op:op+16], src[ip:ip+16])
			} else {
				copy(out[op:op+length], src[ip:ip+length])
			}
			ip += length
			op += length
			state = 4
			continue

		default:
			// M1: 0000DDSS plus one distance byte; 2 bytes after a short
			// literal run, 3 bytes from 2 KiB further after a long one.
			dist = int(src[ip])<<2 + t>>2 + 1
			ip++
			length = 2
			if state == 4 {
				dist += m1FarBase - 1
				length = 3
			}
			s = t & 3
		}

		// Copy the match.
		if dist > op {
			return 0, ErrLookBehind
		}
		if length > len(out)-op {
			return 0, ErrOutputOverrun
		}
		m := op - dist
		switch {
		case dist >= 8 && length <= 8 && len(out)-op >= 8:
			// Non-overlapping short match: one 8-byte word (overcopy).
			copy8(out[op:op+8], out[m:m+8])
		case dist >= 16 && length <= 16 && len(out)-op >= 16:
			copy16(out[op:op+16], out[m:m+16])
		case dist >= length:
			copy(out[op:op+length], out[m:m+length])
		case length <= 16:
			// Short overlapping match: byte by byte.
			seg := out[op : op+length]
			from := out[m : m+length]
			for i := range seg {
				seg[i] = from[i]
			}
		default:
			// Long overlapping match: replicate the period-dist pattern
			// with copies of doubling size.
			seg := out[m : op+length]
			n := dist
			for n < len(seg) {
				n += copy(seg[n:], seg[:n])
			}
		}
		op += length

		// Copy the 0..3 literals that follow the match.
		if s != 0 {
			if s > len(out)-op {
				return 0, ErrOutputOverrun
			}
			if s > len(src)-ip {
				return 0, ErrInputOverrun
			}
			if len(src)-ip >= 4 && len(out)-op >= 4 {
				binary.LittleEndian.PutUint32(out[op:], binary.LittleEndian.Uint32(src[ip:]))
			} else {
				copy(out[op:op+s], src[ip:ip+s])
			}
			ip += s
			op += s
		}
		state = s
	}
}

// extLength reads a length extension at src[ip:]: zero bytes add 255 each
// and the first non-zero byte adds its value and ends it. It returns the
// total and the index after it. The total saturates at extMax, so it cannot
// overflow however long the input is.
func extLength(src []byte, ip int) (int, int, error) {
	n := 0
	for {
		if ip >= len(src) {
			return 0, 0, ErrInputOverrun
		}
		b := src[ip]
		ip++
		if b != 0 {
			return n + int(b), ip, nil
		}
		if n < extMax {
			n += 255
		}
	}
}

// copy8 copies 8 bytes from src to dst (both of length >= 8).
func copy8(dst, src []byte) {
	binary.LittleEndian.PutUint64(dst, binary.LittleEndian.Uint64(src))
}

// copy16 copies 16 bytes from src to dst (both of length >= 16).
func copy16(dst, src []byte) {
	_, _ = dst[15], src[15]
	binary.LittleEndian.PutUint64(dst, binary.LittleEndian.Uint64(src))
	binary.LittleEndian.PutUint64(dst[8:], binary.LittleEndian.Uint64(src[8:]))
}
