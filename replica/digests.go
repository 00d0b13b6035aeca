package replica

import (
	"github.com/openbrc/brc/bacularec"
)

// digestPipe checks the File Daemon's digests on a goroutine of its own.
// Hashing (MD5, the default, runs at ~650 MB/s on one core) then overlaps
// reading and decoding the volume instead of adding to it, which is what
// bounds a replication whose targets keep up. The reader waits for a
// file's hash only at the file's end, so the file's digest result is set
// before its end reaches any target, as when Files checks it.
type digestPipe struct {
	files *bacularec.Files
	cur   map[*bacularec.File]*bacularec.Verifier
	work  chan digestWork
	sync  chan struct{}
	done  chan struct{}
}

// digestWork is a piece to hash, or with v nil a request to signal sync
// once everything before it is hashed.
type digestWork struct {
	v *bacularec.Verifier
	p []byte
}

// newDigestPipe takes the digest checks over from files; call it before
// the first files.Next.
func newDigestPipe(files *bacularec.Files) *digestPipe {
	files.SetVerify(false)
	d := &digestPipe{
		files: files,
		cur:   map[*bacularec.File]*bacularec.Verifier{},
		work:  make(chan digestWork, 64),
		sync:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go func() {
		defer close(d.done)
		for w := range d.work {
			if w.v == nil {
				d.sync <- struct{}{}
				continue
			}
			w.v.Write(w.p)
		}
	}()
	return d
}

// begin starts hashing f, just returned by files.Next.
func (d *digestPipe) begin(f *bacularec.File) {
	d.cur[f] = d.files.NewVerifier(f)
}

// data queues a piece of f's content. p must not change afterwards.
func (d *digestPipe) data(f *bacularec.File, p []byte) {
	if v := d.cur[f]; v != nil {
		d.work <- digestWork{v: v, p: p}
	}
}

// end waits until f's content is hashed and checks f's digest record
// (setting f.DigestChecked or f.DigestErr).
func (d *digestPipe) end(f *bacularec.File) {
	v := d.cur[f]
	if v == nil {
		return
	}
	delete(d.cur, f)
	d.work <- digestWork{}
	<-d.sync
	v.Check(f)
}

// close stops the hashing goroutine.
func (d *digestPipe) close() {
	close(d.work)
	<-d.done
}
