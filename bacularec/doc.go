// Package bacularec reads Bacula backup volumes as a stream, the way
// archive/tar reads tar files: from any io.Reader (a volume file, a file
// still being written, a FIFO), without seeking and without holding file
// content in memory.
//
// # Layers
//
// Reader turns volume bytes into records. It checks every block (BB01 and
// BB02 with their CRC-32, BB03 with its XXH3-64 checksum), bounds block and
// record lengths before allocating, tolerates tape-style zero padding, and
// reassembles records split across blocks per session (VolSessionId,
// VolSessionTime), including blocks of concurrent jobs interleaved in one
// volume and records continued on the next volume of a set.
//
// Files sits on top and yields Items: the volume label, each job's start
// (SOS) and end (EOS) labels, and for every file its attributes, its
// content as (offset, bytes) pieces, and its end, once ACLs, xattrs and the
// digest are known. Content is decoded from plain, sparse, zlib ("GZIP"),
// LZO1X, zstd (Bacula 15) and Bareos' FastLZ and LZ4 records. Digest records
// (MD5, SHA1, SHA256, SHA512, XXH3) are checked as the content streams by;
// a mismatch is reported in File.DigestErr. Encrypted, Win32 and plugin
// streams are not decoded: they are handed out as KindRaw items and listed
// in File.NotDecoded, never dropped silently.
//
// # Errors
//
// Damaged input stops the read with a *FormatError that names the volume,
// the block number and the byte offset, and wraps one of the package's
// sentinel errors (ErrChecksum, ErrBlockID, ...) or io.ErrUnexpectedEOF for
// a volume that ends inside a block. Errors are sticky. WithResync makes the
// Reader skip damaged blocks instead, reporting what it skipped.
//
// # Format
//
// The format follows a clean-room description of what Bacula 9.6 writes,
// checked against volumes written by the real daemons (testdata/ holds
// them, with the commands that made them). The package contains no code
// from Bacula or Bareos.
package bacularec
