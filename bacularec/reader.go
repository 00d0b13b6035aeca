package bacularec

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Volume is one volume of a set read in order. Open is called when the
// reader reaches the volume, so a set of many volumes holds one file open at
// a time.
type Volume struct {
	Name string
	Open func() (io.ReadCloser, error)
}

// FileVolumes returns the volumes stored in the given files, named after
// their base names.
func FileVolumes(paths ...string) []Volume {
	vols := make([]Volume, len(paths))
	for i, p := range paths {
		vols[i] = Volume{Name: filepath.Base(p), Open: func() (io.ReadCloser, error) { return os.Open(p) }}
	}
	return vols
}

// Option configures a Reader.
type Option func(*options)

type options struct {
	name   string
	resync bool
	strict bool
}

// WithVolumeName names the volume of a single-stream reader in errors.
func WithVolumeName(name string) Option { return func(o *options) { o.name = name } }

// WithResync makes the reader skip damaged blocks: instead of stopping at a
// block with a bad id, length or checksum, it searches for the next valid
// block header and goes on, reporting what it skipped through Notices. By
// default a damaged block stops the read.
func WithResync(on bool) Option { return func(o *options) { o.resync = on } }

// WithStrictChecksum refuses blocks whose checksum is 0. Bacula writes 0
// when the device has "Block Checksum = no", so by default 0 is accepted as
// "no checksum".
func WithStrictChecksum(on bool) Option { return func(o *options) { o.strict = on } }

// Record is one complete record, reassembled from its pieces. Data is only
// valid until the next call to Next.
type Record struct {
	Volume      string      // volume of the record's first piece
	Block       BlockHeader // block of the record's first piece
	BlockOffset int64       // byte offset of that block in the volume
	Offset      int64       // byte offset of the record header in the volume
	FileIndex   int32       // > 0 file number in the job; < 0 label type
	Stream      int32       // stream with its flag bits (always the positive value)
	Data        []byte
	// Fragment marks the tail of a record whose beginning was not in the
	// input: a continuation piece first met on a continuation volume read
	// without its predecessor. Data is only that tail.
	Fragment bool
	// End is where the record's last byte is: in the block above, or for a
	// record continued in later blocks, in the block of its last piece.
	End RecordEnd
}

// RecordEnd locates the end of a record in a volume set: the block that
// holds its last byte and the offset just past that byte. A reader of a
// volume that is still being written has the whole record once the volume
// holds BlockEnd bytes (Bacula writes whole blocks).
type RecordEnd struct {
	Volume   string // volume holding the record's last byte
	Block    uint32 // number of the block holding it
	BlockEnd int64  // byte offset just past that block in Volume
	Offset   int64  // byte offset just past the record's last byte in Volume
}

// Session returns the session the record belongs to.
func (r *Record) Session() SessionKey { return r.Block.Session }

// Type returns the stream type without flag bits.
func (r *Record) Type() int { return int(r.Stream & streamMaskType) }

// IsLabel reports whether the record is a volume or session label.
func (r *Record) IsLabel() bool { return r.FileIndex < 0 }

// partial is a record whose data continues in a later block of its session.
type partial struct {
	rec  Record
	want int
	buf  []byte
}

// Reader reads the records of a sequence of volumes. It hides blocks,
// block header versions and continuation pieces; records of concurrent
// sessions come out in volume order, each one whole.
//
// A Reader keeps one incomplete record per session, also across volumes,
// so a set must be given in order. Memory is bounded by the largest block
// and, per open session, the largest record.
type Reader struct {
	opt  options
	vols []Volume
	vi   int

	rc   io.ReadCloser
	src  *bufio.Reader
	name string
	off  int64  // bytes of the current volume consumed
	pend []byte // bytes pushed back by a resynchronisation, read before src

	blk    []byte
	hdr    BlockHeader
	blkOff int64
	pos    int
	nblk   int // blocks read in this volume

	parts   map[SessionKey]*partial
	spare   []*partial // reusable partials
	held    *partial   // backs the record returned last
	rec     Record
	notices []error
	err     error
}

// NewReader returns a Reader of one volume stream: a file, a growing file
// behind a blocking reader, or a pipe. It never seeks.
func NewReader(r io.Reader, opts ...Option) *Reader {
	var o options
	for _, f := range opts {
		f(&o)
	}
	rc, ok := r.(io.ReadCloser)
	if !ok {
		rc = io.NopCloser(r)
	}
	vol := Volume{Name: o.name, Open: func() (io.ReadCloser, error) { return rc, nil }}
	return NewMultiReader([]Volume{vol}, opts...)
}

// NewMultiReader returns a Reader of a volume set, read in the order given;
// a record split across the end of one volume continues on the next.
func NewMultiReader(vols []Volume, opts ...Option) *Reader {
	r := &Reader{vols: vols, parts: make(map[SessionKey]*partial)}
	for _, f := range opts {
		f(&r.opt)
	}
	if len(vols) == 0 {
		r.err = ErrNoVolume
	}
	return r
}

// VolumeName returns the name of the volume being read.
func (r *Reader) VolumeName() string { return r.name }

// Notices returns and clears the non-fatal problems met since the last call:
// skipped damaged data (ErrSkipped) and dropped incomplete records. Each is a
// *FormatError.
func (r *Reader) Notices() []error {
	n := r.notices
	r.notices = nil
	return n
}

// Close closes the volume being read.
func (r *Reader) Close() error {
	if r.rc == nil {
		return nil
	}
	err := r.rc.Close()
	r.rc = nil
	return err
}

// Next returns the next complete record. At the end of the last volume it
// returns io.EOF. Errors are sticky.
func (r *Reader) Next() (*Record, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.held != nil {
		r.spare = append(r.spare, r.held)
		r.held = nil
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
		r.Close()
		return nil, err
	}
	return rec, nil
}

func (r *Reader) ferr(off int64, err error) error {
	return &FormatError{Volume: r.name, Block: r.hdr.Number, Offset: off, Err: err}
}

func (r *Reader) notice(off int64, err error) {
	r.notices = append(r.notices, r.ferr(off, err))
}

func (r *Reader) next() (*Record, error) {
	for {
		if r.src == nil {
			if err := r.openNext(); err != nil {
				return nil, err
			}
			continue
		}
		hl := recHeaderLen
		if r.hdr.Version == 1 {
			hl = bb01RecHdrLen
		}
		if r.blk == nil || r.pos+hl > len(r.blk) {
			// Fewer than a header's bytes left: the block is done.
			err := r.readBlock()
			if err == io.EOF {
				r.endVolume()
				continue
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		if rec, err := r.record(hl); rec != nil || err != nil {
			return rec, err
		}
	}
}

func (r *Reader) openNext() error {
	if r.vi >= len(r.vols) {
		return io.EOF
	}
	v := r.vols[r.vi]
	r.vi++
	rc, err := v.Open()
	if err != nil {
		return fmt.Errorf("bacularec: open volume %s: %w", v.Name, err)
	}
	r.rc, r.name, r.off, r.nblk = rc, v.Name, 0, 0
	r.pend, r.blk, r.pos = nil, nil, 0
	r.src = bufio.NewReaderSize(rc, 256<<10)
	return nil
}

func (r *Reader) endVolume() {
	r.Close()
	r.src, r.blk = nil, nil
}

// read fills p from the pushed-back bytes, then from the volume.
func (r *Reader) read(p []byte) (int, error) {
	n := 0
	if len(r.pend) > 0 {
		n = copy(p, r.pend)
		r.pend = r.pend[n:]
	}
	if n < len(p) {
		m, err := io.ReadFull(r.src, p[n:])
		n += m
		if err != nil {
			r.off += int64(n)
			if n > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
	r.off += int64(n)
	return n, nil
}

// unread pushes bytes back in front of the stream.
func (r *Reader) unread(b []byte) {
	if len(b) == 0 {
		return
	}
	p := make([]byte, 0, len(b)+len(r.pend))
	p = append(p, b...)
	r.pend = append(p, r.pend...)
	r.off -= int64(len(b))
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// readBlock reads the next block into r.blk. It returns io.EOF at the clean
// end of the volume.
func (r *Reader) readBlock() error {
	var skipped int64
	var cause error
	start := r.off
	for {
		err := r.tryBlock()
		if err == nil {
			if skipped > 0 {
				r.notice(start, fmt.Errorf("%w: %d bytes from offset %d to the next valid block (%v)", ErrSkipped, skipped, start, cause))
			}
			return nil
		}
		var fe *FormatError
		resyncable := errors.As(err, &fe) && !errors.Is(err, io.ErrUnexpectedEOF)
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			if errors.Is(err, io.ErrUnexpectedEOF) && r.vi < len(r.vols) {
				// A volume that ran out of space mid-block; the writer
				// writes the same block again on the next volume.
				r.notice(r.blkOff, ErrShortBlock)
				return io.EOF
			}
			if skipped > 0 {
				r.notice(start, fmt.Errorf("%w: %d bytes from offset %d to the end of the volume (%v)", ErrSkipped, skipped, start, cause))
			}
			return err
		}
		if !r.opt.resync || !resyncable {
			return err
		}
		if cause == nil {
			cause = fe.Err
		}
		// Drop one byte and search for the next block id.
		n, err2 := r.scan()
		skipped += n
		if err2 != nil {
			if err2 == io.EOF {
				r.notice(start, fmt.Errorf("%w: %d bytes from offset %d to the end of the volume (%v)", ErrSkipped, skipped, start, cause))
			}
			return err2
		}
	}
}

// scan discards bytes up to the next candidate block header, one whose id
// is "BB01", "BB02" or "BB03", after dropping the first byte of the block
// that failed. It returns the number of bytes discarded.
func (r *Reader) scan() (int64, error) {
	buf := r.pend
	r.pend = nil
	if len(buf) == 0 {
		var one [1]byte
		if _, err := r.read(one[:]); err != nil {
			return 0, io.EOF
		}
	} else {
		buf = buf[1:]
		r.off++
	}
	skipped := int64(1)
	chunk := make([]byte, 64<<10)
	for {
		if i := findBlockID(buf); i >= 0 {
			skipped += int64(i)
			r.off += int64(i)
			r.pend = buf[i:]
			return skipped, nil
		}
		// Keep the last 15 bytes: an id may straddle the refill.
		if drop := len(buf) - 15; drop > 0 {
			skipped += int64(drop)
			r.off += int64(drop)
			buf = append(buf[:0:0], buf[drop:]...)
		}
		n, _ := io.ReadFull(r.src, chunk)
		if n == 0 {
			skipped += int64(len(buf))
			r.off += int64(len(buf))
			return skipped, io.EOF
		}
		buf = append(buf, chunk[:n]...)
	}
}

// findBlockID returns the offset of the first position in b that starts a
// complete 16-byte prefix with a block id at bytes 12-15, or -1.
func findBlockID(b []byte) int {
	for i := 0; i+16 <= len(b); {
		j := bytes.Index(b[i+12:], []byte("BB0"))
		if j < 0 || i+j+16 > len(b) {
			return -1
		}
		i += j
		if c := b[i+15]; c >= '1' && c <= '3' {
			return i
		}
		i++
	}
	return -1
}

// blockErr reports a block that failed; the block number is taken from the
// raw header, when enough of it was read.
func (r *Reader) blockErr(raw []byte, err error) error {
	var num uint32
	if len(raw) >= 12 {
		num = binary.BigEndian.Uint32(raw[8:])
	}
	return &FormatError{Volume: r.name, Block: num, Offset: r.blkOff, Err: err}
}

// tryBlock reads one block at the current position.
func (r *Reader) tryBlock() error {
	var hb [bb03HeaderLen]byte
	for {
		r.blkOff = r.off
		n, err := r.read(hb[:16])
		if err != nil {
			if err == io.EOF {
				return io.EOF
			}
			if r.nblk > 0 && r.off%tapeBlockAlign == 0 && allZero(hb[:n]) {
				return io.EOF // zero padding at the end of a tape image
			}
			return r.blockErr(hb[:n], fmt.Errorf("truncated block header: %w", io.ErrUnexpectedEOF))
		}
		if !allZero(hb[:16]) || r.nblk == 0 {
			break
		}
		// Tape images pad each block with zeros to a multiple of 1024 (or
		// to the fixed block size): skip zeros up to the next boundary.
		pad := make([]byte, tapeBlockAlign-int(r.off%tapeBlockAlign))
		m, err := r.read(pad)
		if !allZero(pad[:m]) {
			r.unread(pad[:m])
			r.unread(hb[:16])
			return r.blockErr(nil, fmt.Errorf("%w: zero bytes then data before a 1024-byte boundary", ErrBlockID))
		}
		if err != nil {
			return io.EOF
		}
	}
	v := blockVersion(hb[:])
	if v == 0 {
		r.unread(hb[:16])
		return r.blockErr(hb[:16], fmt.Errorf("%w %q", ErrBlockID, hb[12:16]))
	}
	h := BlockHeader{Version: v}
	hl := h.headerLen()
	if hl > 16 {
		if _, err := r.read(hb[16:hl]); err != nil {
			return r.blockErr(hb[:16], fmt.Errorf("truncated block header: %w", io.ErrUnexpectedEOF))
		}
	}
	h = parseBlockHeader(hb[:hl], v)
	if h.Length < uint32(hl) || h.Length > MaxBlockLength {
		r.unread(hb[:hl])
		return r.blockErr(hb[:hl], fmt.Errorf("%w: %d bytes", ErrBlockLength, h.Length))
	}
	if cap(r.blk) < int(h.Length) {
		r.blk = make([]byte, h.Length, max(int(h.Length), 64512))
	}
	blk := r.blk[:h.Length]
	copy(blk, hb[:hl])
	if _, err := r.read(blk[hl:]); err != nil {
		return r.blockErr(hb[:hl], fmt.Errorf("block of %d bytes truncated: %w", h.Length, io.ErrUnexpectedEOF))
	}
	if !verifyBlock(&h, blk, r.opt.strict) {
		r.unread(blk)
		return r.blockErr(hb[:hl], ErrChecksum)
	}
	if v == 3 && h.Options&bb03OptEncryptedBlk != 0 {
		r.unread(blk)
		return r.blockErr(hb[:hl], ErrEncryptedBlock)
	}
	r.hdr, r.blk, r.pos = h, blk, hl
	r.nblk++
	return nil
}

// record parses the record at r.pos. It returns nil, nil when the record
// continues in a later block.
func (r *Reader) record(hl int) (*Record, error) {
	at := r.blkOff + int64(r.pos)
	b := r.blk[r.pos : r.pos+hl]
	sess := r.hdr.Session
	if hl == bb01RecHdrLen {
		sess = SessionKey{uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]),
			uint32(b[4])<<24 | uint32(b[5])<<16 | uint32(b[6])<<8 | uint32(b[7])}
		b = b[8:]
	}
	h := parseRecordHeader(b)
	r.pos += hl
	avail := len(r.blk) - r.pos

	fragment := false
	if h.Stream < 0 {
		if p := r.parts[sess]; p != nil {
			if p.rec.FileIndex != h.FileIndex || p.rec.Stream != -h.Stream || int(h.Length) != p.want-len(p.buf) {
				err := fmt.Errorf("%w: piece {FileIndex %d, stream %d, %d bytes to come} for record {FileIndex %d, stream %d, %d of %d bytes}",
					ErrContinuation, h.FileIndex, h.Stream, h.Length, p.rec.FileIndex, p.rec.Stream, len(p.buf), p.want)
				if !r.opt.resync {
					return nil, r.ferr(at, err)
				}
				r.notice(at, err)
				delete(r.parts, sess)
				r.spare = append(r.spare, p)
				r.pos = len(r.blk)
				return nil, nil
			}
			n := min(int(h.Length), avail)
			p.buf = append(p.buf, r.blk[r.pos:r.pos+n]...)
			r.pos += n
			if len(p.buf) < p.want {
				return nil, nil
			}
			delete(r.parts, sess)
			r.held = p // reusable once the caller is done with the record
			r.rec = p.rec
			r.rec.Data = p.buf
			r.rec.End = r.endHere()
			return &r.rec, nil
		}
		// An orphan piece: the beginning of its record is not in the input.
		fragment = true
		h.Stream = -h.Stream
	} else if p := r.parts[sess]; p != nil && h.FileIndex != VolLabel && h.FileIndex != PreLabel {
		// A new record while one is incomplete: data was lost. (The label
		// of the next volume of a set is the exception: the job that goes
		// on there writes it in a block of its own, and the split record
		// continues after it.)
		err := fmt.Errorf("%w: record {FileIndex %d, stream %d} ended after %d of %d bytes",
			ErrContinuation, p.rec.FileIndex, p.rec.Stream, len(p.buf), p.want)
		if !r.opt.resync {
			return nil, r.ferr(at, err)
		}
		r.notice(at, err)
		delete(r.parts, sess)
		r.spare = append(r.spare, p)
	}
	if h.Length > MaxRecordLength {
		return nil, r.ferr(at, fmt.Errorf("%w: %d bytes", ErrRecordLength, h.Length))
	}
	hdr := r.hdr
	hdr.Session = sess
	rec := Record{Volume: r.name, Block: hdr, BlockOffset: r.blkOff, Offset: at,
		FileIndex: h.FileIndex, Stream: h.Stream, Fragment: fragment}
	if int(h.Length) <= avail {
		rec.Data = r.blk[r.pos : r.pos+int(h.Length) : r.pos+int(h.Length)]
		r.pos += int(h.Length)
		rec.End = r.endHere()
		r.rec = rec
		return &r.rec, nil
	}
	p := r.newPartial(int(h.Length))
	p.rec = rec
	p.buf = append(p.buf, r.blk[r.pos:]...)
	r.pos = len(r.blk)
	r.parts[sess] = p
	return nil, nil
}

// endHere is the end of a record whose last byte precedes r.pos.
func (r *Reader) endHere() RecordEnd {
	return RecordEnd{Volume: r.name, Block: r.hdr.Number, BlockEnd: r.blkOff + int64(len(r.blk)), Offset: r.blkOff + int64(r.pos)}
}

func (r *Reader) newPartial(want int) *partial {
	for i, p := range r.spare {
		if cap(p.buf) >= want {
			r.spare = append(r.spare[:i], r.spare[i+1:]...)
			p.want, p.buf = want, p.buf[:0]
			return p
		}
	}
	// Grow with the data that actually arrives: a hostile length must not
	// cost memory the volume does not hold.
	return &partial{want: want, buf: make([]byte, 0, min(want, 256<<10))}
}

// Pending reports the sessions that have an incomplete record, for
// diagnostics at the end of a read.
func (r *Reader) Pending() []SessionKey {
	keys := make([]SessionKey, 0, len(r.parts))
	for k := range r.parts {
		keys = append(keys, k)
	}
	return keys
}
