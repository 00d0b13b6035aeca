// Package crypt encrypts files at rest for disaster-recovery targets:
// streaming AES-256-GCM in chunks (age's STREAM construction), bound to
// the file's logical path, with keys named by an id so they can rotate.
//
// NewWriter encrypts for one Key; NewReader and NewReaderAt find the key
// of a file by its id in a Keyring. Plaintext is only ever returned once the
// chunk holding it is authenticated, and a file that was cut, extended,
// reordered, spliced with another, or moved to another path fails
// (ErrAuth, ErrTruncated, ErrTrailingData) instead of decrypting.
// DecryptTree restores a whole encrypted tree for recovery.
//
// # Keys
//
// A master Key is 32 random bytes, kept as 64 hexadecimal characters
// (for example the output of "openssl rand -hex 32") in a file only its
// owner can read (KeyFromFile) or given by a command (KeyFromCommand).
// Its id, HMAC-SHA256(key, "openbrc key id") cut to 8 bytes, is in every
// file header. To rotate, encrypt with the new key and keep the old ones
// in the Keyring.
//
// NewContentHash gives a keyed hash so a target can skip unchanged files
// without showing which files are equal: BLAKE3 in keyed mode, its key
// HKDF-SHA256(secret K, no salt, info "openbrc content hash v1"), 32
// bytes. Without K nobody can compute a sum, so nobody can confirm a
// guess of a file's content against a stored one. Equal inputs still
// give equal sums, so a state index (replica.Encrypt's) hashes each 1 MiB
// span of a file after a random salt of its own, the span's number and
// the file's path: its stored sums show no equality either, between
// files or between versions of a file, and it records K's id so that
// sums of a rotated key are not compared.
//
// # Logical path
//
// Each file is encrypted for a path given by the caller (any string, used
// byte for byte, no cleaning) and only decrypts for that same path. An
// encrypted target uses the backed-up absolute path, which is also where
// the file sits under the target root: ROOT/etc/passwd is encrypted for
// "/etc/passwd". DecryptTree relies on this (see TreeOptions.PathPrefix).
//
// # Format, version 1
//
// All integers are big-endian. A file is a 47-byte header and one or
// more chunks:
//
//	offset size  header
//	     0    6  magic "BRCENC"
//	     6    1  format version, 0x01
//	     7    8  key id of the master key K
//	    15   32  salt, random for each file
//
// The file key is HKDF-SHA256(secret K, salt, info "openbrc file key v1"),
// 32 bytes, for AES-256-GCM with 12-byte nonces and 16-byte tags.
//
// The plaintext is cut into chunks of ChunkSize (65536) bytes; the final
// chunk holds the rest, from 1 to 65536 bytes, or 0 bytes when the whole
// plaintext is empty (so a file cut right after its header is seen as
// cut). Chunk i (from 0) is stored as AES-256-GCM ciphertext and tag of
// its plaintext, so every chunk but the final one is 65552 bytes, with:
//
//	nonce           = i as 11 bytes || 0x01 if the chunk is final, else 0x00
//	associated data = the 47 header bytes || the logical path
//
// The counter in the nonce fixes each chunk's place, the final flag
// marks the end (no truncation at a chunk boundary, no data after it), the
// per-file salt keeps chunks from moving between files, and the header in
// the associated data authenticates the header. The encrypted size is
// therefore 47 + P + 16×max(1, ⌈P/65536⌉) for P plaintext bytes
// (EncryptedSize, PlaintextSize), which lets ReaderAt seek.
//
// A format change gets a new version byte; readers refuse versions they
// do not know (ErrVersion). The test vectors in testdata/ pin version 1.
package crypt
