// Package fastlz decodes the compressed-record bodies that Bareos writes
// for its FZFZ, FZ4L and FZ4H compression algorithms.
//
// # Format
//
// A Bareos compressed record is a 12-byte big-endian compression header
// (magic, body length, level, version) followed by a body. This package
// handles only the body; callers parse the header themselves and pick the
// codec from the magic: FastLZ for "FZFZ", LZ4 for "FZ4L" and "FZ4H".
//
// The body is a "fastlzlib" block container: a sequence of blocks, each a
// 16-byte header followed by block data, terminated by an end marker.
//
//	off size field
//	  0    7 "FastLZ\x00"
//	  7    1 high nibble: type (0x1 RAW, 0xC COMPRESSED);
//	         low nibble: p, block size 2^(p+10), p <= 8
//	  8    4 compressed size, little-endian
//	 12    4 original size, little-endian
//
// A header with both sizes zero is the end marker. RAW blocks hold the
// data as is. COMPRESSED blocks hold one FastLZ block (FZFZ) or one raw LZ4
// block (FZ4L/FZ4H, no frame, no size prefix). Blocks are independent: no
// history carries over between blocks. Bareos itself writes at most one
// data block per record (262,144 bytes); DecodeStream nevertheless loops
// over any number of blocks until the end marker and rejects bytes after it.
//
// A FastLZ block encodes its level (1 or 2) in the top 3 bits of its first
// byte, which always starts a literal run. Instructions are literal runs
// (1..32 bytes) or matches with a 13-bit distance; level 2 adds
// 255-chained match lengths and "far" matches with a 16-bit big-endian
// distance extension (up to 73,727 bytes back).
//
// # Limits and safety
//
// Block sizes are checked against the limits Bareos enforces (p <= 8,
// compressed and original sizes <= [MaxBlockData], compressed <= bytes
// remaining) and against the caller's output limit before any memory is
// allocated. The decoders never panic and never read or write out of
// bounds on hostile input; they produce exactly the announced number of
// bytes or return an error wrapping one of the package's Err* sentinels.
//
// # Provenance
//
// This is a clean-room implementation written only from the prose
// specification in the openbrc shared vectors README
// (vectors/bareos-compress/README.md, §3–§5). No Bareos, FastLZ or
// fastlzlib source code was read or copied. LZ4 blocks are decoded with
// github.com/pierrec/lz4/v4.
package fastlz
