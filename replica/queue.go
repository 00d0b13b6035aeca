package replica

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/openbrc/brc/bacularec"
)

// msgKind is what a queued message carries from the reader to a target.
type msgKind uint8

const (
	mBegin   msgKind = iota + 1 // job start
	mFile                       // a file's attributes
	mData                       // a piece of content
	mFileEnd                    // the file complete (ACLs, xattrs, digest)
	mJobEnd                     // job end label
	mCut                        // nothing more comes for this target in this pass
)

type msg struct {
	kind  msgKind
	job   *bacularec.Job // identifies the job (the reader's, still changing)
	label *bacularec.Job // mBegin, mJobEnd: a copy of the job as of the label
	// spooled: read back from the spool, so job, label and file are this
	// target's own copies.
	spooled bool
	// size is cost() when queued: the file may grow (ACLs, xattrs) while
	// the message waits, and is not to be read then.
	size int64
	file *bacularec.File
	off  int64
	data []byte
	// digested, on an mFileEnd, is closed once the file's digest is
	// checked (see digestPipe); its digest fields are not to be read
	// before.
	digested <-chan struct{}
}

// msgOverhead is what a message costs in memory besides its data and the
// file it describes: the msg in the queue's slice, and its share of the
// reader's per-record state.
const msgOverhead = 128

// fileOverhead is what a bacularec.File costs besides its strings.
const fileOverhead = 512

// cost is what m keeps in memory while queued. It must not underestimate:
// a queue of small files' records is mostly File structs, and counting
// them short lets a "32 MiB" queue hold hundreds of megabytes.
func (m *msg) cost() int64 {
	c := int64(len(m.data)) + msgOverhead
	if f := m.file; f != nil && (m.kind == mFile || m.kind == mFileEnd) {
		c += fileOverhead + int64(len(f.Path)+len(f.Link))
		for _, a := range f.ACLs {
			c += int64(len(a.Text)) + 32
		}
		for _, x := range f.Xattrs {
			c += int64(len(x.Name)+len(x.Value)) + 48
		}
	}
	return c
}

// errQueueFull: the message fits neither in memory nor in the spool.
var errQueueFull = errors.New("replica: queue full")

// queue carries the messages of one target in order: in memory up to
// memLimit bytes, then in a spool file up to spoolLimit bytes. Once
// anything is spooled, everything after it is spooled too until the
// target has read the spool back, so the order never changes: what is in
// memory is always older than what is in the spool.
type queue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	mem        []msg
	head       int
	memBytes   int64
	memLimit   int64
	spoolDir   string
	spoolLimit int64
	spool      *os.File
	// One gob stream each way per spool file: the types are described
	// once, in its first records, instead of in every record (a new
	// Encoder and Decoder per record cost more than writing the file).
	enc        *gob.Encoder
	encBuf     bytes.Buffer
	dec        *gob.Decoder
	decBuf     bytes.Buffer
	wOff, rOff int64
	spooled    int
	wbuf       []byte // a record being spooled
	closed     bool
	// err: the spool failed (writing or reading). What it held is lost,
	// so the target cannot go on in order: pop returns err once the
	// memory queue is empty, and push returns it from then on.
	err      error
	errTaken bool
	// room, when not nil, gets a token when room is made (see made); the
	// queues of one pass share it.
	room chan struct{}

	// stats
	maxSpool int64
}

func newQueue(memLimit int64, spoolDir string, spoolLimit int64) *queue {
	q := &queue{memLimit: memLimit, spoolDir: spoolDir, spoolLimit: spoolLimit}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// pushMode says where push may put a message.
type pushMode int

const (
	// memOnly: in memory when there is room; once something is spooled,
	// in the spool (order); errQueueFull otherwise. The spool is not
	// started.
	memOnly pushMode = iota
	// orSpool: in memory, else in the spool, else errQueueFull.
	orSpool
	// waitRoom: like memOnly, but waits for room instead of failing.
	waitRoom
	// force: in memory whatever the limits (control messages).
	force
)

// push appends m as mode allows.
func (q *queue) push(m msg, mode pushMode) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.closed {
			return ErrClosed
		}
		if q.err != nil && mode != force {
			return q.err
		}
		if m.size == 0 {
			m.size = m.cost()
		}
		c := m.size
		if mode == force || q.spooled == 0 && (q.memBytes+c <= q.memLimit || len(q.mem) == q.head) {
			q.mem = append(q.mem, m)
			q.memBytes += c
			q.cond.Broadcast()
			return nil
		}
		if (q.spooled > 0 || mode == orSpool) && q.spoolDir != "" && q.wOff+c <= q.spoolLimit {
			if err := q.spoolWrite(m); err != nil {
				q.err = err
				return err
			}
			q.spooled++
			q.cond.Broadcast()
			return nil
		}
		if mode != waitRoom {
			return errQueueFull
		}
		q.cond.Wait()
	}
}

// pop returns the next message, waiting for one; io.EOF once the queue
// is closed and empty.
func (q *queue) pop() (msg, error) {
	m, _, err := q.popWithin(0)
	return m, err
}

// popIdle is pop, calling idle (when not nil) if no message comes within
// d.
func (q *queue) popIdle(d time.Duration, idle func()) (msg, error) {
	if idle == nil {
		return q.pop()
	}
	m, ok, err := q.popWithin(d)
	if !ok {
		idle()
		m, err = q.pop()
	}
	return m, err
}

// popWithin is pop waiting at most d (0: no limit); ok is false when no
// message came in time.
func (q *queue) popWithin(d time.Duration) (m msg, ok bool, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var expired bool
	if d > 0 && q.head == len(q.mem) && q.spooled == 0 && !q.closed {
		t := time.AfterFunc(d, func() {
			q.mu.Lock()
			expired = true
			q.cond.Broadcast()
			q.mu.Unlock()
		})
		defer t.Stop()
	}
	for {
		if q.head < len(q.mem) {
			m = q.mem[q.head]
			q.mem[q.head] = msg{}
			q.head++
			q.memBytes -= m.size
			switch {
			case q.head == len(q.mem):
				q.mem, q.head = q.mem[:0], 0
			case q.head >= 1024 && q.head >= len(q.mem)/2:
				// A queue that never empties would grow its slice
				// forever: move what is left to the front.
				n := copy(q.mem, q.mem[q.head:])
				clear(q.mem[n:])
				q.mem, q.head = q.mem[:n], 0
			}
			// A reader waiting for room is woken once half the queue is
			// free, not at every message: waking it for each 64 KiB makes
			// the reader and the target take turns instead of running at
			// the same time.
			if q.memBytes <= q.memLimit/2 || q.head == len(q.mem) {
				q.made()
			}
			return m, true, nil
		}
		if q.err != nil {
			if !q.errTaken {
				q.errTaken = true
				q.spooled = 0
				q.made()
				return msg{}, true, q.err
			}
		} else if q.spooled > 0 {
			m, err = q.spoolRead()
			if err != nil {
				q.err = err
				continue
			}
			q.spooled--
			if q.spooled == 0 {
				// Read back entirely: start the file over.
				q.wOff, q.rOff = 0, 0
				q.enc, q.dec = nil, nil
				if err := q.spool.Truncate(0); err != nil {
					q.err = fmt.Errorf("replica: spool: %w", err)
				}
			}
			q.made()
			return m, true, nil
		}
		if q.closed {
			return msg{}, true, io.EOF
		}
		if expired {
			return msg{}, false, nil
		}
		q.cond.Wait()
	}
}

// made wakes those waiting for room: push in waitRoom mode, and the
// reader waiting on the room channel for whichever full queue frees up
// first. q.mu is held.
func (q *queue) made() {
	q.cond.Broadcast()
	if q.room != nil {
		select {
		case q.room <- struct{}{}:
		default:
		}
	}
}

// empty reports whether nothing is queued.
func (q *queue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.head == len(q.mem) && q.spooled == 0
}

// close wakes everyone; pop drains what is queued, then returns io.EOF.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// release removes the spool file.
func (q *queue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.spool != nil {
		os.Remove(q.spool.Name())
		q.spool.Close()
		q.spool = nil
	}
}

// Spool records: u32 length, then kind, then for data u64 offset and the
// bytes, for the others the job or file in gob (not JSON: paths are raw
// bytes, and JSON would replace what is not UTF-8). The spool is
// private to one process (it is truncated when read back and removed at
// the end), so its format needs no version.
func (q *queue) spoolWrite(m msg) error {
	if m.digested != nil {
		// The file is written out with its digest result. The hashing
		// is at most a few pieces behind, and needs nothing of q.
		<-m.digested
	}
	if q.spool == nil {
		f, err := os.CreateTemp(q.spoolDir, "spool-*")
		if err != nil {
			return fmt.Errorf("replica: spool: %w", err)
		}
		q.spool = f
	}
	// One buffer for the record: header, then body, written at once.
	b := append(q.wbuf[:0], 0, 0, 0, 0, byte(m.kind))
	var err error
	switch m.kind {
	case mData:
		b = binary.BigEndian.AppendUint64(b, uint64(m.off))
		b = append(b, m.data...)
	case mBegin, mJobEnd:
		b, err = q.gobAppend(b, m.label)
	default:
		b, err = q.gobAppend(b, spoolFileOf(m.file))
	}
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-5))
	q.wbuf = b
	if _, err := q.spool.WriteAt(b, q.wOff); err != nil {
		return fmt.Errorf("replica: spool: %w", err)
	}
	q.wOff += int64(len(b))
	q.maxSpool = max(q.maxSpool, q.wOff)
	return nil
}

func (q *queue) spoolRead() (msg, error) {
	var hdr [5]byte
	if _, err := q.spool.ReadAt(hdr[:], q.rOff); err != nil {
		return msg{}, fmt.Errorf("replica: spool: %w", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := q.spool.ReadAt(body, q.rOff+5); err != nil {
		return msg{}, fmt.Errorf("replica: spool: %w", err)
	}
	q.rOff += 5 + int64(len(body))
	m := msg{kind: msgKind(hdr[4]), spooled: true}
	switch m.kind {
	case mData:
		m.off = int64(binary.BigEndian.Uint64(body))
		m.data = body[8:]
	case mBegin, mJobEnd:
		m.label = new(bacularec.Job)
		if err := q.gobDecode(body, m.label); err != nil {
			return msg{}, err
		}
	default:
		var sf spoolFile
		if err := q.gobDecode(body, &sf); err != nil {
			return msg{}, err
		}
		m.file = sf.file()
	}
	return m, nil
}

// spoolFile is a bacularec.File as spooled: the job is the one of the
// enclosing mBegin, and a digest error becomes its text.
type spoolFile struct {
	F         bacularec.File
	DigestErr string
}

func spoolFileOf(f *bacularec.File) spoolFile {
	sf := spoolFile{F: *f}
	sf.F.Job = nil
	if f.DigestErr != nil {
		sf.DigestErr = f.DigestErr.Error()
		sf.F.DigestErr = nil
	}
	return sf
}

func (sf *spoolFile) file() *bacularec.File {
	f := sf.F
	if sf.DigestErr != "" {
		f.DigestErr = errors.New(sf.DigestErr)
	}
	return &f
}

// gobAppend appends v, encoded as the next value of the spool's gob
// stream, to b.
func (q *queue) gobAppend(b []byte, v any) ([]byte, error) {
	if q.enc == nil {
		q.encBuf.Reset()
		q.enc = gob.NewEncoder(&q.encBuf)
	}
	if err := q.enc.Encode(v); err != nil {
		return nil, fmt.Errorf("replica: spool: %w", err)
	}
	b = append(b, q.encBuf.Bytes()...)
	q.encBuf.Reset()
	return b, nil
}

// gobDecode decodes the next value of the spool's gob stream from body,
// a record that gobAppend made, read back in the same order.
func (q *queue) gobDecode(body []byte, v any) error {
	if q.dec == nil {
		q.decBuf.Reset()
		q.dec = gob.NewDecoder(&q.decBuf)
	}
	q.decBuf.Write(body)
	if err := q.dec.Decode(v); err != nil {
		return fmt.Errorf("replica: spool: %w", err)
	}
	return nil
}
