package bacularec

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/zeebo/xxh3"
)

// Block and record layouts (all integers big-endian):
//
//	BB01 block header (16 bytes): CheckSum u32, BlockLength u32, BlockNumber u32, "BB01"
//	BB02 block header (24 bytes): as BB01, then VolSessionId u32, VolSessionTime u32
//	BB03 block header (32 bytes): Options u32 (in the CheckSum place), BlockLength,
//	     BlockNumber, "BB03", VolSessionId, VolSessionTime, XXH3-64 u64 of the block
//	     with this field zeroed
//	record header (12 bytes): FileIndex i32, Stream i32, DataLength u32
//	BB01 record header (20 bytes): VolSessionId, VolSessionTime, then as above
const (
	bb01HeaderLen  = 16
	bb02HeaderLen  = 24
	bb03HeaderLen  = 32
	recHeaderLen   = 12
	bb01RecHdrLen  = 20
	tapeBlockAlign = 1024

	// MaxBlockLength is the largest block length accepted, Bacula's own
	// sanity limit. Bareos writes blocks of up to 1 MiB by default.
	MaxBlockLength = 20_000_000
	// MaxRecordLength bounds a record's data, reassembled.
	MaxRecordLength = 20_000_000

	bb03OptChecksum     = 0x1
	bb03OptEncryptedVol = 0x2
	bb03OptEncryptedBlk = 0x4
	streamMaskType      = 0x7FF
	streamBitOffsets    = 0x04000000
)

// BlockHeader is a decoded block header.
type BlockHeader struct {
	Version  int    // 1, 2 or 3
	CheckSum uint64 // CRC-32 (BB01/BB02) or XXH3-64 (BB03); 0 = none
	Length   uint32 // BlockLength: header plus records, padding excluded
	Number   uint32 // BlockNumber: counts per session, carries over volumes
	Session  SessionKey
	Options  uint32 // BB03 options word
}

func (h *BlockHeader) headerLen() int {
	switch h.Version {
	case 1:
		return bb01HeaderLen
	case 3:
		return bb03HeaderLen
	}
	return bb02HeaderLen
}

// blockVersion returns the header version named by the id at bytes 12-15,
// or 0 when they are not a block id.
func blockVersion(b []byte) int {
	if b[12] != 'B' || b[13] != 'B' || b[14] != '0' {
		return 0
	}
	switch b[15] {
	case '1':
		return 1
	case '2':
		return 2
	case '3':
		return 3
	}
	return 0
}

// parseBlockHeader decodes the fixed part of a header; b holds at least
// headerLen bytes for the version found in b[12:16].
func parseBlockHeader(b []byte, v int) BlockHeader {
	h := BlockHeader{
		Version: v,
		Length:  binary.BigEndian.Uint32(b[4:]),
		Number:  binary.BigEndian.Uint32(b[8:]),
	}
	switch v {
	case 1:
		h.CheckSum = uint64(binary.BigEndian.Uint32(b[0:]))
	case 2:
		h.CheckSum = uint64(binary.BigEndian.Uint32(b[0:]))
		h.Session = SessionKey{binary.BigEndian.Uint32(b[16:]), binary.BigEndian.Uint32(b[20:])}
	case 3:
		h.Options = binary.BigEndian.Uint32(b[0:])
		h.Session = SessionKey{binary.BigEndian.Uint32(b[16:]), binary.BigEndian.Uint32(b[20:])}
		h.CheckSum = binary.BigEndian.Uint64(b[24:])
	}
	return h
}

// verifyBlock checks the checksum of a whole block. A BB01/BB02 CRC of 0 is
// what a device with "Block Checksum = no" writes; it is accepted unless
// strict is set.
func verifyBlock(h *BlockHeader, blk []byte, strict bool) bool {
	switch h.Version {
	case 3:
		if h.Options&bb03OptChecksum == 0 {
			return !strict
		}
		var zero [8]byte
		d := xxh3.New()
		d.Write(blk[:24])
		d.Write(zero[:])
		d.Write(blk[32:])
		return d.Sum64() == h.CheckSum
	default:
		if h.CheckSum == 0 && !strict {
			return true
		}
		return uint64(crc32.ChecksumIEEE(blk[4:])) == h.CheckSum
	}
}

// recordHeader is a decoded record header.
type recordHeader struct {
	FileIndex int32
	Stream    int32
	Length    uint32
	Session   SessionKey // BB01 only
}

func parseRecordHeader(b []byte) recordHeader {
	return recordHeader{
		FileIndex: int32(binary.BigEndian.Uint32(b[0:])),
		Stream:    int32(binary.BigEndian.Uint32(b[4:])),
		Length:    binary.BigEndian.Uint32(b[8:]),
	}
}
