package replica

import (
	"github.com/openbrc/brc/bacularec"
)

// digestPipe checks the File Daemon's digests on a goroutine of its own.
// Hashing (MD5, the default, runs at ~650 MB/s on one core) then overlaps
// reading and decoding the volume instead of adding to it. Nobody waits
// for it file by file: the end of a file is queued for the targets at
// once, with a channel closed when its digest is checked, and a target
// waits on that channel only when it reaches the file's end (see
// msg.digested).
type digestPipe struct {
	files *bacularec.Files
	cur   map[*bacularec.File]*bacularec.Verifier
	work  chan digestWork
	done  chan struct{}
}

// digestWork is a piece to hash, or with checked set, the end of f.
type digestWork struct {
	v       *bacularec.Verifier
	p       []byte
	f       *bacularec.File
	checked chan struct{}
}

// newDigestPipe takes the digest checks over from files; call it before
// the first files.Next.
func newDigestPipe(files *bacularec.Files) *digestPipe {
	files.SetVerify(false)
	d := &digestPipe{
		files: files,
		cur:   map[*bacularec.File]*bacularec.Verifier{},
		work:  make(chan digestWork, 64),
		done:  make(chan struct{}),
	}
	go func() {
		defer close(d.done)
		for w := range d.work {
			if w.checked != nil {
				w.v.Check(w.f)
				close(w.checked)
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

// end queues the check of f's digest record (setting f.DigestChecked or
// f.DigestErr) once its content is hashed, and returns a channel closed
// then. Until it is, f's digest fields are not to be read.
func (d *digestPipe) end(f *bacularec.File) <-chan struct{} {
	v := d.cur[f]
	if v == nil {
		return nil
	}
	delete(d.cur, f)
	c := make(chan struct{})
	d.work <- digestWork{v: v, f: f, checked: c}
	return c
}

// close stops the hashing goroutine once everything queued is done.
func (d *digestPipe) close() {
	close(d.work)
	<-d.done
}
