// Package testvol makes damaged variants of the real fixture volumes for
// tests: fixtures are never edited by hand, their variants are built in
// test code from a real one.
package testvol

import (
	"encoding/binary"
	"hash/crc32"
)

// FlipContentByte flips one bit in the middle of block n (0-based) of a
// BB02 volume and recomputes the block's checksum, as if the content had
// changed before Bacula wrote the block: the block reads fine, and the
// record it hits no longer matches its digest. Block 2 of the plain
// fixtures holds data of their large files. vol is changed in place.
func FlipContentByte(vol []byte, n int) {
	off := 0
	for range n {
		off += int(binary.BigEndian.Uint32(vol[off+4:]))
	}
	size := int(binary.BigEndian.Uint32(vol[off+4:]))
	vol[off+size/2] ^= 0x01
	binary.BigEndian.PutUint32(vol[off:], crc32.ChecksumIEEE(vol[off+4:off+size]))
}
