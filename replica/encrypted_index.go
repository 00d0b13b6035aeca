package replica

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/openbrc/brc/crypt"
	"github.com/openbrc/brc/internal/extract"
)

// EncryptedEntry is what the state index of an encrypted target
// (EncryptOptions.Index) remembers of one regular file: the stat of the
// encrypted file on the target, as IndexEntry has it for a clear Mirror,
// and keyed hashes of the plaintext it decrypts to. See Encrypt.
type EncryptedEntry struct {
	// KeyID is the id of the master key the hashes are keyed with (not
	// necessarily the one the file is encrypted with: a copy kept from
	// before a rotation is hashed with the current key).
	KeyID [8]byte
	// The encrypted file on the target: Size is its size (the
	// plaintext's plus crypt's overhead), Mtime and Ctime in nanoseconds,
	// as the target's file system says.
	Size, Mtime, Ctime int64
	Dev, Ino           uint64
	// Plain is the plaintext size.
	Plain int64
	// Meta is the hash of the metadata written (see IndexEntry.Meta).
	Meta uint64
	// Salt is drawn at random each time the entry's hashes are computed
	// anew, and Chunks holds, for each ChunkSize span of the plaintext,
	// its keyed BLAKE3: keyed with crypt.NewContentHash's key, over Salt,
	// the span's number, the path and the span (see spanPrefix).
	Salt   [16]byte
	Chunks [][32]byte
}

// EncryptedIndex is the state index of an encrypted target, by backed-up
// path. Catalog.EncryptedIndex provides a persistent one. Writes may be
// buffered until Flush.
type EncryptedIndex interface {
	Get(path string) (EncryptedEntry, bool, error)
	Put(path string, e EncryptedEntry) error
	Delete(path string) error
	Flush() error
}

// encEntryVersion starts an encoded EncryptedEntry.
const encEntryVersion = 1

// MarshalBinary encodes e compactly (version 1).
func (e *EncryptedEntry) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 96+32*len(e.Chunks))
	b = append(b, encEntryVersion)
	b = append(b, e.KeyID[:]...)
	b = binary.AppendVarint(b, e.Size)
	b = binary.AppendVarint(b, e.Mtime)
	b = binary.AppendVarint(b, e.Ctime)
	b = binary.AppendUvarint(b, e.Dev)
	b = binary.AppendUvarint(b, e.Ino)
	b = binary.AppendVarint(b, e.Plain)
	b = binary.LittleEndian.AppendUint64(b, e.Meta)
	b = append(b, e.Salt[:]...)
	b = binary.AppendUvarint(b, uint64(len(e.Chunks)))
	for _, c := range e.Chunks {
		b = append(b, c[:]...)
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary made.
func (e *EncryptedEntry) UnmarshalBinary(b []byte) error {
	r := bytes.NewReader(b)
	if v, err := r.ReadByte(); err != nil || v != encEntryVersion {
		return errBadEntry
	}
	var err error
	full := func(p []byte) {
		if _, e2 := io.ReadFull(r, p); e2 != nil {
			err = errors.Join(err, e2)
		}
	}
	vi := func() int64 {
		v, e2 := binary.ReadVarint(r)
		err = errors.Join(err, e2)
		return v
	}
	vu := func() uint64 {
		v, e2 := binary.ReadUvarint(r)
		err = errors.Join(err, e2)
		return v
	}
	full(e.KeyID[:])
	e.Size, e.Mtime, e.Ctime = vi(), vi(), vi()
	e.Dev, e.Ino = vu(), vu()
	e.Plain = vi()
	var m [8]byte
	full(m[:])
	e.Meta = binary.LittleEndian.Uint64(m[:])
	full(e.Salt[:])
	n := vu()
	if err != nil || n > uint64(r.Len()/32) {
		return errBadEntry
	}
	e.Chunks = make([][32]byte, n)
	for i := range e.Chunks {
		full(e.Chunks[i][:])
	}
	if err != nil {
		return errBadEntry
	}
	return nil
}

// matches reports whether info, the stat of the target's file now, is
// what e recorded.
func (e *EncryptedEntry) matches(info extract.Info) bool {
	return info.Mode&0o170000 == 0o100000 && info.Size == e.Size && info.Mtime == e.Mtime &&
		info.Ctime == e.Ctime && info.Dev == e.Dev && info.Ino == e.Ino
}

// setStat records info as the stat of the target's file.
func (e *EncryptedEntry) setStat(info extract.Info) {
	e.Size, e.Mtime, e.Ctime, e.Dev, e.Ino = info.Size, info.Mtime, info.Ctime, info.Dev, info.Ino
}

// bEncFiles is the bucket, beside a target's "files", of its encrypted
// index.
var bEncFiles = []byte("encfiles")

// EncryptedIndex returns target's encrypted state index, kept apart from
// its Index (which, for an encrypted target, describes the ciphertext).
// Puts and Deletes are buffered and written in one transaction by Flush
// (or when many are waiting).
func (c *Catalog) EncryptedIndex(target string) EncryptedIndex {
	return newBufIndex[EncryptedEntry](c, target, bEncFiles, "encrypted index")
}

// keyedChunks hashes a plaintext given in order by ChunkSize spans, each
// with the keyed hash of crypt.NewContentHash after spanPrefix: equal
// spans of two files, or of two versions of a file, hash differently
// (another salt or path), so that the hashes stored show no equality to
// anyone, and without the key none can be computed to confirm a guess.
type keyedChunks struct {
	h      hash.Hash
	salt   [16]byte
	path   string
	in     int64 // bytes of the current span hashed
	n      int64 // bytes hashed in all
	chunks [][32]byte
}

func newKeyedChunks(k crypt.Key) *keyedChunks {
	return &keyedChunks{h: crypt.NewContentHash(k)}
}

// start begins a plaintext, hashed with salt for the index key path.
func (k *keyedChunks) start(salt [16]byte, path string) {
	k.salt, k.path, k.in, k.n, k.chunks = salt, path, 0, 0, nil
}

// newSalt returns a fresh random salt.
func newSalt() (s [16]byte) {
	rand.Read(s[:])
	return s
}

// spanPrefix starts the hash of span i: the salt, i and the path, with
// its length, so that no two (salt, i, path, span) give the same input.
func (k *keyedChunks) spanPrefix(i int) {
	var b [16 + 8 + 8]byte
	copy(b[:16], k.salt[:])
	binary.LittleEndian.PutUint64(b[16:], uint64(i))
	binary.LittleEndian.PutUint64(b[24:], uint64(len(k.path)))
	k.h.Reset()
	k.h.Write(b[:])
	io.WriteString(k.h, k.path)
}

// Write hashes p after what came before.
func (k *keyedChunks) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if k.in == 0 {
			k.spanPrefix(len(k.chunks))
		}
		m := min(int64(len(p)), ChunkSize-k.in)
		k.h.Write(p[:m])
		k.in += m
		k.n += m
		p = p[m:]
		if k.in == ChunkSize {
			k.endSpan()
		}
	}
	return n, nil
}

func (k *keyedChunks) endSpan() {
	var s [32]byte
	k.h.Sum(s[:0])
	k.chunks = append(k.chunks, s)
	k.in = 0
}

// finish returns the sums of the spans: none for an empty plaintext.
func (k *keyedChunks) finish() [][32]byte {
	if k.in > 0 {
		k.endSpan()
	}
	c := k.chunks
	k.chunks = nil
	return c
}

// span returns the sum of span i, whole in p, for the salt and path
// given to start; it leaves the running hash of Write reset.
func (k *keyedChunks) span(i int, p []byte) [32]byte {
	k.spanPrefix(i)
	k.h.Write(p)
	var s [32]byte
	k.h.Sum(s[:0])
	k.h.Reset()
	return s
}

// spans returns how many ChunkSize spans n bytes of plaintext make.
func spans(n int64) int64 { return (n + ChunkSize - 1) / ChunkSize }

// pendingEntry is what the index will say of a file given to the target
// once the target tells where it landed (indexTap.Put).
type pendingEntry struct {
	salt     [16]byte
	chunks   [][32]byte
	plain    int64
	ready    bool // the plaintext was read whole: chunks and plain are set
	conflict bool // the path was written twice before either was placed
}

// indexTap stands for the wrapped Mirror's Index (MirrorOptions.Index,
// which may be nil) so that the Encrypt wrapper learns where each file
// it gave the Mirror landed: the Mirror puts an entry only once the file
// is in place (and, with MirrorOptions.Verify, read back), with the stat
// of the file in place, which is what the encrypted index must record.
type indexTap struct {
	inner Index
	e     *encrypted
}

func (x *indexTap) Get(p string) (IndexEntry, bool, error) {
	if x.inner == nil {
		return IndexEntry{}, false, nil
	}
	return x.inner.Get(p)
}

func (x *indexTap) Put(p string, me IndexEntry) error {
	err := x.e.placed(p, &me)
	if x.inner != nil {
		err = errors.Join(err, x.inner.Put(p, me))
	}
	return err
}

func (x *indexTap) Delete(p string) error {
	x.e.forget(p)
	if x.inner == nil {
		return nil
	}
	return x.inner.Delete(p)
}

func (x *indexTap) Flush() error {
	if x.inner == nil {
		return nil
	}
	return x.inner.Flush()
}

// placed records in the encrypted index the file the Mirror put in place
// at index key p, described by me. A file the wrapper did not see
// written whole (such as a copy whose metadata only was applied, which
// the wrapper records itself) loses its entry.
func (e *encrypted) placed(p string, me *IndexEntry) error {
	pe := e.pending[p]
	delete(e.pending, p)
	if pe == nil || !pe.ready || pe.conflict || me.Size != crypt.EncryptedSize(pe.plain) {
		return e.idx.Delete(p)
	}
	ent := EncryptedEntry{KeyID: e.keyID, Size: me.Size, Mtime: me.Mtime, Ctime: me.Ctime, Dev: me.Dev, Ino: me.Ino,
		Plain: pe.plain, Meta: me.Meta, Salt: pe.salt, Chunks: pe.chunks}
	return e.idx.Put(p, ent)
}

// forget drops what the encrypted index knows of index key p.
func (e *encrypted) forget(p string) {
	delete(e.pending, p)
	e.idx.Delete(p)
}

// expect notes that the file at index key p is being written, so that
// placed can record it.
func (e *encrypted) expect(p string) *pendingEntry {
	pe := &pendingEntry{}
	if old := e.pending[p]; old != nil {
		pe.conflict = true
	}
	e.pending[p] = pe
	return pe
}

// lookup returns the encrypted index's entry for the regular file at
// backed-up path (index key p) of plain bytes when it vouches for the
// target's copy: hashes keyed with the current key, the stat of the
// encrypted file as recorded, that plaintext size. Only a stat is made.
func (e *encrypted) lookup(path, p string, plain int64) (EncryptedEntry, extract.Info, bool) {
	ent, ok, err := e.idx.Get(p)
	if err != nil || !ok || ent.KeyID != e.keyID || ent.Plain != plain || ent.Size != crypt.EncryptedSize(plain) ||
		int64(len(ent.Chunks)) != spans(plain) {
		return EncryptedEntry{}, extract.Info{}, false
	}
	info, err := e.mir.statTarget(path)
	if err != nil || !ent.matches(info) {
		return EncryptedEntry{}, extract.Info{}, false
	}
	return ent, info, true
}

// compareKeyed reads the plaintext of src span by span, comparing each
// span's keyed hash with ent's. It returns -1 when every span is equal
// (and the plaintext ends where ent's does); else the number of the first
// span that differs, whose bytes read are in the returned slice (valid
// until the next call). Memory: one span.
func (e *encrypted) compareKeyed(src io.Reader, p string, ent *EncryptedEntry) (int, []byte, error) {
	if e.spanBuf == nil {
		e.spanBuf = make([]byte, ChunkSize)
	}
	if e.ch == nil {
		e.ch = newKeyedChunks(e.key)
	}
	k := e.ch
	k.start(ent.Salt, p)
	for i := 0; ; i++ {
		n, err := fill(src, e.spanBuf)
		if err != nil && err != io.EOF {
			return i, e.spanBuf[:n], err
		}
		if n == 0 {
			if i == len(ent.Chunks) {
				return -1, nil, nil
			}
			return i, nil, nil
		}
		if i >= len(ent.Chunks) || k.span(i, e.spanBuf[:n]) != ent.Chunks[i] {
			return i, e.spanBuf[:n], nil
		}
		if err == io.EOF {
			if i == len(ent.Chunks)-1 {
				return -1, nil, nil
			}
			return i, e.spanBuf[:n], nil // ends early: a span short
		}
	}
}

// errCopyRead marks a failure to read back, from the target's copy, the
// start of a file found changed after it: that file fails, not the
// stream.
var errCopyRead = errors.New("replica: reading the unchanged start of the target's copy")

// copyPrefix reads the first n plaintext bytes of the target's copy, for
// the logical path, authenticated.
type copyPrefix struct {
	f *os.File
	r io.Reader
}

func (e *encrypted) openPrefix(path, logical string, n int64) (*copyPrefix, error) {
	f, err := e.open.openTarget(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	ra, err := crypt.NewReaderAt(f, fi.Size(), e.ring, logical)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &copyPrefix{f: f, r: io.NewSectionReader(ra, 0, n)}, nil
}

func (c *copyPrefix) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", errCopyRead, err)
	}
	return n, err
}
