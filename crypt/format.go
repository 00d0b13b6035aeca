package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
)

const (
	magic      = "BRCENC"
	version    = 1
	idSize     = 8
	saltSize   = 32
	headerSize = 6 + 1 + idSize + saltSize // magic, version, key id, salt

	// ChunkSize is the plaintext size of every chunk but the final one.
	ChunkSize = 64 << 10
	tagSize   = 16
	encChunk  = ChunkSize + tagSize

	fileKeyInfo = "openbrc file key v1"
)

// header is the parsed fixed-size file header; raw is kept as read, as
// it is authenticated byte for byte.
type header struct {
	raw  [headerSize]byte
	id   [idSize]byte
	salt [saltSize]byte
}

func newHeader(id [idSize]byte, salt []byte) *header {
	h := &header{id: id}
	copy(h.salt[:], salt)
	b := h.raw[:0]
	b = append(b, magic...)
	b = append(b, version)
	b = append(b, id[:]...)
	_ = append(b, salt...)
	return h
}

// parseHeader checks what was read of a header (n bytes of raw). A short
// read that is still a prefix of a valid header is a truncation: an empty
// file on an encrypted target is a cut-off encrypted file.
func parseHeader(raw []byte) (*header, error) {
	k := min(len(raw), len(magic))
	if string(raw[:k]) != magic[:k] {
		return nil, ErrNotEncrypted
	}
	if len(raw) > len(magic) && raw[len(magic)] != version {
		return nil, fmt.Errorf("%w %d", ErrVersion, raw[len(magic)])
	}
	if len(raw) < headerSize {
		return nil, fmt.Errorf("%w: header is %d of %d bytes", ErrTruncated, len(raw), headerSize)
	}
	h := &header{}
	copy(h.raw[:], raw)
	copy(h.id[:], raw[len(magic)+1:])
	copy(h.salt[:], raw[len(magic)+1+idSize:])
	return h, nil
}

// readHeader reads and parses the header at the start of r.
func readHeader(r io.Reader) (*header, error) {
	var raw [headerSize]byte
	n, err := io.ReadFull(r, raw[:])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, err
	}
	return parseHeader(raw[:n])
}

// stream is the per-file state shared by the readers and the writer: the
// AEAD under the file key and the associated data of every chunk.
type stream struct {
	aead cipher.AEAD
	ad   []byte // header || path
}

func newStream(master *Key, h *header, path string) (*stream, error) {
	fk, err := hkdf.Key(sha256.New, master[:], h.salt[:], fileKeyInfo, 32)
	if err != nil {
		return nil, err
	}
	defer clear(fk)
	block, err := aes.NewCipher(fk)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	ad := make([]byte, 0, headerSize+len(path))
	ad = append(append(ad, h.raw[:]...), path...)
	return &stream{aead: aead, ad: ad}, nil
}

// nonce is age's STREAM nonce: an 11-byte big-endian chunk counter and a
// final-chunk flag, so no (file key, nonce) pair is used twice and a
// chunk only opens at its own position with its own finality.
func nonce(n *[12]byte, counter uint64, last bool) []byte {
	*n = [12]byte{}
	binary.BigEndian.PutUint64(n[3:11], counter)
	if last {
		n[11] = 1
	}
	return n[:]
}

// open authenticates and decrypts chunk number counter into dst. When it
// fails, the opposite finality is tried, only to tell a truncation (a
// chunk that is authentic but not final ended the input) or trailing data
// (a final chunk was followed by more) from other damage.
func (s *stream) open(dst, chunk []byte, counter uint64, last bool) ([]byte, error) {
	var nb [12]byte
	p, err := s.aead.Open(dst[:0], nonce(&nb, counter, last), chunk, s.ad)
	if err == nil {
		return p, nil
	}
	if len(chunk) == encChunk {
		if p, err := s.aead.Open(dst[:0], nonce(&nb, counter, !last), chunk, s.ad); err == nil {
			clear(p)
			if last {
				return nil, fmt.Errorf("chunk %d: %w", counter, ErrTruncated)
			}
			return nil, fmt.Errorf("chunk %d: %w", counter, ErrTrailingData)
		}
	}
	return nil, fmt.Errorf("chunk %d: %w", counter, ErrAuth)
}

// EncryptedSize returns the size of the encrypted form of plain bytes of
// plaintext (-1 if plain is negative): the header, plain bytes and one tag
// per chunk, counting one empty chunk for an empty plaintext.
func EncryptedSize(plain int64) int64 {
	if plain < 0 {
		return -1
	}
	n := max(1, (plain+ChunkSize-1)/ChunkSize)
	return headerSize + plain + n*tagSize
}

// PlaintextSize is the inverse of EncryptedSize. It fails, wrapping
// ErrAuth, for a size no encrypted file can have (ErrTruncated when there
// is not even a header and one tag). It says nothing about authenticity:
// NewReaderAt checks the final chunk.
func PlaintextSize(enc int64) (int64, error) {
	body := enc - headerSize
	if body < tagSize {
		return 0, fmt.Errorf("%w: %d bytes", ErrTruncated, enc)
	}
	n := (body + encChunk - 1) / encChunk
	last := body - (n-1)*encChunk
	if last < tagSize || (last == tagSize && n > 1) {
		return 0, fmt.Errorf("crypt: impossible encrypted size %d: %w", enc, ErrAuth)
	}
	return body - n*tagSize, nil
}
