package bacularec

import (
	"sync"
)

// fetched is a record read ahead of the consumer, its data owned, and, for
// compressed data, decoded by a worker.
type fetched struct {
	rec     Record
	data    *[]byte // backs rec.Data
	notices []error
	err     error

	decoded bool
	out     []byte
	outBuf  *[]byte // backs out
	derr    error
	done    chan struct{} // closed when decoding is over
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 128<<10); return &b }}

var decoderPool = sync.Pool{New: func() any { return new(decoder) }}

// SetDecoders makes Files read records ahead of the caller and decompress
// up to n of them at once, on other goroutines; items come out exactly as
// without it. Decompression is the costly part of reading a compressed
// volume, and records decompress independently, so this scales with cores.
// Call it before the first Next; n ≤ 1 keeps everything on the caller's
// goroutine. A Files with decoders must be closed with Close when it is not
// read to the end.
func (f *Files) SetDecoders(n int) {
	if f.ahead != nil || n <= 1 {
		return
	}
	f.decoders = n
	f.ahead = make(chan *fetched, 2*n)
	f.stop = make(chan struct{})
	go f.readAhead()
}

// Close stops reading ahead and closes the current volume. Next then
// returns ErrClosed.
func (f *Files) Close() error {
	f.queue, f.qi = f.queue[:0], 0
	if f.err == nil {
		f.err = ErrClosed
	}
	f.release()
	if f.stop != nil {
		select {
		case <-f.stop:
		default:
			close(f.stop)
		}
		for p := range f.ahead { // wait for the reader to stop
			<-p.done
		}
	}
	return f.r.Close()
}

// nextRecord returns the next record with the notices met reading it.
func (f *Files) nextRecord() (*Record, []error, error) {
	if f.ahead == nil {
		rec, err := f.r.Next()
		return rec, f.r.Notices(), err
	}
	f.release()
	p, ok := <-f.ahead
	if !ok {
		return nil, nil, ErrClosed
	}
	<-p.done
	f.cur = p
	if p.err != nil {
		return nil, p.notices, p.err
	}
	return &p.rec, p.notices, nil
}

// release returns the buffers of the record handled last.
func (f *Files) release() {
	if p := f.cur; p != nil {
		f.cur = nil
		if p.data != nil {
			bufPool.Put(p.data)
		}
		if p.outBuf != nil {
			bufPool.Put(p.outBuf)
		}
	}
}

// readAhead runs on its own goroutine: it reads records, copies them out
// of the Reader's buffers and hands compressed data to decoders, keeping
// the records in order.
func (f *Files) readAhead() {
	defer close(f.ahead)
	sem := make(chan struct{}, f.decoders)
	for {
		rec, err := f.r.Next()
		p := &fetched{notices: f.r.Notices(), err: err, done: make(chan struct{})}
		if err == nil {
			p.rec = *rec
			p.data = bufPool.Get().(*[]byte)
			*p.data = append((*p.data)[:0], rec.Data...)
			p.rec.Data = *p.data
			if typ := rec.Type(); rec.FileIndex > 0 && !rec.Fragment && compressed(typ) {
				p.decoded = true
				sem <- struct{}{}
				go func() {
					defer func() { <-sem; close(p.done) }()
					payload := p.rec.Data
					if sparseStream(typ) {
						if len(payload) < 8 {
							p.decoded = false // the caller reports it
							return
						}
						payload = payload[8:]
					}
					d := decoderPool.Get().(*decoder)
					p.outBuf = bufPool.Get().(*[]byte)
					d.out = (*p.outBuf)[:0]
					p.out, p.derr = d.payload(typ, payload)
					*p.outBuf = d.out
					d.out = nil
					decoderPool.Put(d)
				}()
			} else {
				close(p.done)
			}
		} else {
			close(p.done)
		}
		select {
		case f.ahead <- p:
		case <-f.stop:
			<-p.done
			return
		}
		if err != nil {
			return
		}
	}
}

func compressed(typ int) bool {
	switch typ {
	case StreamGzipData, StreamSparseGzipData, StreamCompressedData, StreamSparseCompressed:
		return true
	}
	return false
}

func sparseStream(typ int) bool {
	return typ == StreamSparseData || typ == StreamSparseGzipData || typ == StreamSparseCompressed
}
