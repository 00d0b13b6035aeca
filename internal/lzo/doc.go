// Package lzo decompresses LZO1X blocks, the format written by liblzo2's
// lzo1x_1_compress and lzo1x_999_compress and used by Bacula for its
// LZO-compressed backup records. It is the equivalent of liblzo2's
// lzo1x_decompress_safe: every input is bounds checked, and malformed input
// yields an error, never a panic or an out-of-range access.
//
// # Format
//
// A block is a raw LZO1X stream with no header, checksum or length prefix.
// It is a sequence of instructions, each a literal run (bytes copied from
// the input) or a match (a copy of earlier output at a distance of 1 to
// 49151 bytes), and it ends with the end-of-stream marker 0x11 0x00 0x00.
// Match instructions carry in their low two bits a count S of 0..3 literals
// that follow the match; S (or 4 after a long literal run) is the "state"
// that selects the meaning of the next opcode in the range 0..15.
//
//	first byte 18..255   t-17 literals (state = min(t-17, 4))
//	0000LLLL  state 0    3+L literals, L=0: 18+ext (state = 4)
//	0000DDSS  state 1..3 2-byte match, distance (next<<2)+D+1
//	0000DDSS  state 4    3-byte match, distance (next<<2)+D+2049
//	0001HLLL  M4         length 2+L (L=0: 9+ext), then LE16 v:
//	                     distance 16384+(H<<14)+(v>>2), S=v&3;
//	                     distance 16384 is the end-of-stream marker
//	001LLLLL  M3         length 2+L (L=0: 33+ext), then LE16 v:
//	                     distance (v>>2)+1, S=v&3
//	01LDDDSS  M2         length 3+L, distance (next<<3)+D+1
//	1LLDDDSS  M2         length 5+L, distance (next<<3)+D+1
//
// "ext" is a length extension: each zero byte adds 255 and the first
// non-zero byte adds its own value and ends the extension.
//
// # API
//
// Decompress decodes into a caller-supplied buffer whose capacity is the
// output limit and never allocates; it is meant for hot paths such as
// restoring Bacula records (one block each, usually at most 64 KiB of
// output; a block can be larger than its output, since Bacula keeps LZO
// output even when it expands). DecompressN allocates, never more than a
// given limit. Both return nil and one of the package's Err values for a
// bad block.
//
// # Compatibility
//
// Any block liblzo2's lzo1x_decompress_safe accepts is accepted with the
// same output, and any block it rejects is rejected with the matching error
// (LZO_E_INPUT_OVERRUN is ErrInputOverrun, LZO_E_OUTPUT_OVERRUN is
// ErrOutputOverrun, LZO_E_LOOKBEHIND_OVERRUN is ErrLookBehind,
// LZO_E_INPUT_NOT_CONSUMED is ErrInputNotConsumed). This was checked
// against the library, outside these tests (which do not link C), on about
// 2.5 million random and mutated blocks. In particular, like liblzo2, any M4
// instruction with distance 16384 ends the block, whatever its length and S
// bits; compressors only ever emit 0x11 0x00 0x00. The Linux kernel's
// LZO-RLE variant is not supported.
//
// # Clean-room origin
//
// This implementation was written from the public prose description of the
// LZO1X bitstream (as in the Linux kernel's Documentation/staging/lzo.rst)
// and from the observed behaviour of liblzo2. No source code of liblzo2, of
// the Linux kernel's LZO code, or of any other LZO implementation was read
// or copied. The test vectors in testdata/ were produced by calling liblzo2
// from the small generator in testdata/gen/.
package lzo
