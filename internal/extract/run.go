package extract

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openbrc/brc/bacularec"
)

// RunOptions tune Run.
type RunOptions struct {
	// NoVerify skips the digest checks (File.Digest is still read). Block
	// checksums still protect the data; the digests also catch a file
	// daemon that read a file while it changed, or a decoder bug.
	NoVerify bool
	// Workers is the number of Writers creating and writing files at once.
	// File creation is system-call bound, and file systems create files in
	// parallel far faster than one by one; 0 means 8. With 1 the items are
	// applied inline, in order.
	Workers int
	// Progress, when set, is called about every ProgressEvery with the
	// summary so far, and once at the end.
	Progress      func(Summary)
	ProgressEvery time.Duration // default 250ms
	// Errorf receives every problem that does not stop the run: a file not
	// extracted, a digest mismatch, skipped damaged data. Nil discards them
	// (they are still counted). It may be called from several goroutines,
	// never at the same time.
	Errorf func(error)
}

// Summary is what Run did: the reader's view (jobs, digests, streams not
// decoded, notices) and the writers' (Stats).
type Summary struct {
	Jobs             int
	JobsOK           int // ended with status 'T'
	JobsUnfinished   int // the volumes ended before the job's end label
	Files            int64
	Bytes            int64
	DigestsChecked   int64
	DigestMismatches int64
	NotDecoded       map[int]int // stream -> files with records of it
	Notices          int         // non-fatal reader problems (skipped data, orphan records)
	Errors           int64       // files not extracted faithfully
	Writer           Stats
}

// Failed reports whether anything was lost or wrong: a file not extracted,
// a digest mismatch, damaged data skipped.
func (s Summary) Failed() bool {
	return s.Errors > 0 || s.DigestMismatches > 0 || s.Notices > 0 || s.Writer.Incomplete > 0
}

// String renders the summary as the final report of an extraction.
func (s Summary) String() string {
	var b strings.Builder
	w := s.Writer
	fmt.Fprintf(&b, "jobs: %d (%d ended OK, %d unfinished in these volumes)\n", s.Jobs, s.JobsOK, s.JobsUnfinished)
	fmt.Fprintf(&b, "files: %d regular, %d directories, %d symlinks, %d hard links, %d special; %d deleted, %d skipped\n",
		w.Files, w.Dirs, w.Symlinks, w.HardLinks, w.Specials, w.Deleted, w.Skipped)
	fmt.Fprintf(&b, "bytes: %d (%d left as holes)\n", w.Bytes, w.HoleBytes)
	fmt.Fprintf(&b, "digests: %d checked, %d mismatched\n", s.DigestsChecked, s.DigestMismatches)
	if len(s.NotDecoded) == 0 {
		b.WriteString("streams not decoded: none\n")
	} else {
		b.WriteString("streams not decoded:")
		for _, st := range slices.Sorted(maps.Keys(s.NotDecoded)) {
			fmt.Fprintf(&b, " %d (%s) in %d files;", st, bacularec.StreamName(st), s.NotDecoded[st])
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "problems: %d errors, %d reader notices, %d incomplete files, %d warnings\n",
		s.Errors, s.Notices, w.Incomplete, w.Warnings)
	return b.String()
}

func (s *Stats) add(o Stats) {
	s.Files += o.Files
	s.Dirs += o.Dirs
	s.Symlinks += o.Symlinks
	s.HardLinks += o.HardLinks
	s.Specials += o.Specials
	s.Deleted += o.Deleted
	s.Bytes += o.Bytes
	s.HoleBytes += o.HoleBytes
	s.Skipped += o.Skipped
	s.NotDecoded += o.NotDecoded
	s.Incomplete += o.Incomplete
	s.Warnings += o.Warnings
	s.Errors += o.Errors
}

// Run extracts everything f yields under root, then closes f and the
// Writers. It stops at the first fatal error (damaged volume, the target
// unusable, ctx done); other problems are counted and passed to
// ropt.Errorf.
//
// With several workers, each file goes to the Writer chosen by a hash of
// its path (a hard link by its target's path), so items of one path stay
// in order; directory records go to the first Writer, which is closed
// last, so directory metadata is applied after every file is written.
// Deletions and the start of each job wait until everything before them
// is written. Options.Filter and Options.Logf are then called from several
// goroutines at once.
func Run(ctx context.Context, f *bacularec.Files, root string, opt Options, ropt RunOptions) (Summary, error) {
	n := ropt.Workers
	if n <= 0 {
		n = 8
	}
	r := &runner{ropt: ropt, s: Summary{NotDecoded: map[int]int{}}, seed: maphash.MakeSeed(),
		symlinks: map[string]*bacularec.Job{}, running: map[*bacularec.Job]bool{}, strip: opt.StripPrefix}
	if opt.ReplaceSymlink == nil && opt.Deletions {
		opt.ReplaceSymlink = r.replaceSymlink
		r.trackLinks = true
	}
	for range n {
		w, err := New(root, opt)
		if err != nil {
			r.closeAll()
			return r.s, err
		}
		r.writers = append(r.writers, w)
	}
	if n > 1 {
		r.start()
		// Decompress records on every core while the writers write, and
		// check digests on the writers, where files are many at a time.
		f.SetDecoders(runtime.GOMAXPROCS(0))
		f.SetVerify(false)
		if !ropt.NoVerify {
			r.files = f
		}
	} else if ropt.NoVerify {
		f.SetVerify(false)
	}
	err := r.read(ctx, f)
	f.Close()
	if cerr := r.finish(); err == nil {
		err = cerr
	}
	if ropt.Progress != nil {
		ropt.Progress(r.s)
	}
	return r.s, err
}

type runner struct {
	ropt    RunOptions
	strip   string // Options.StripPrefix
	writers []*Writer
	files   *bacularec.Files // set when the workers check digests
	queues  []chan task
	pending sync.WaitGroup // items sent to workers, not yet applied
	done    sync.WaitGroup // worker goroutines
	seed    maphash.Seed
	bufs    sync.Pool

	mu    sync.Mutex // guards the fields below, s.Errors and ropt.Errorf calls
	s     Summary
	fatal error
	// Symbolic links made in this run, by job, and the jobs in progress:
	// a link an earlier job made may give way to a later job's directory.
	// Kept only when replaceSymlink answers Options.ReplaceSymlink.
	trackLinks bool
	symlinks   map[string]*bacularec.Job
	running    map[*bacularec.Job]bool
}

// replaceSymlink answers Options.ReplaceSymlink: a symbolic link in the way
// of a later job's file is replaced when this run made it for a job that
// has ended. Within one job a path cannot be both, so a link there, or one
// that was in the output directory before, is refused.
func (r *runner) replaceSymlink(rel string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	j, ok := r.symlinks[rel]
	return ok && !r.running[j]
}

// track records job starts and ends and the symbolic links made.
func (r *runner) track(it *bacularec.Item) {
	switch {
	case it.Kind == bacularec.KindJobStart, it.Kind == bacularec.KindJobEnd:
		r.mu.Lock()
		if it.Kind == bacularec.KindJobStart {
			r.running[it.Job] = true
		} else {
			delete(r.running, it.Job)
		}
		r.mu.Unlock()
	case it.Kind == bacularec.KindFileEnd && it.File.Type == bacularec.TypeSymlink:
		if rel, err := cleanRel(StripPrefix(it.File.Path, r.strip)); err == nil {
			r.mu.Lock()
			r.symlinks[rel] = it.File.Job
			r.mu.Unlock()
		}
	}
}

func (r *runner) report(err error) {
	if r.ropt.Errorf != nil {
		r.ropt.Errorf(err)
	}
}

// apply runs one item on writer i and accounts for its error.
func (r *runner) apply(i int, it *bacularec.Item) {
	err := r.writers[i].Apply(it)
	if err == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if IsFatal(err) {
		if r.fatal == nil {
			r.fatal = err
		}
		return
	}
	if !errors.Is(err, ErrNotDecoded) && !errors.Is(err, ErrIncomplete) {
		r.s.Errors++
	}
	r.report(err)
}

// task is an item for a worker, with the Verifier of a file that starts.
type task struct {
	it *bacularec.Item
	v  *bacularec.Verifier
}

func (r *runner) start() {
	for i := range r.writers {
		q := make(chan task, 32)
		r.queues = append(r.queues, q)
		r.done.Add(1)
		go func() {
			defer r.done.Done()
			r.work(i, q)
		}()
	}
}

// hashJob is a piece for a worker's hasher, or, with done set, a request
// to say when every piece before it has been hashed.
type hashJob struct {
	v    *bacularec.Verifier
	data []byte
	put  func() // called when hashed
	done chan struct{}
}

// work applies the items of one Writer. Hashing a file for its digest check
// runs beside, on a goroutine of its own, so that a large file is hashed
// and written at the same time.
func (r *runner) work(i int, q chan task) {
	hq := make(chan hashJob, 32)
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for j := range hq {
			if j.done != nil {
				close(j.done)
				continue
			}
			j.v.Write(j.data)
			j.put()
		}
	}()
	defer func() { close(hq); <-hashed }()
	verifiers := map[*bacularec.File]*bacularec.Verifier{}
	for t := range q {
		it := t.it
		put := func() {}
		switch it.Kind {
		case bacularec.KindFile:
			if t.v != nil {
				verifiers[it.File] = t.v
			}
		case bacularec.KindData:
			buf := &it.Data
			if v := verifiers[it.File]; v != nil {
				// The buffer goes back to the pool when both the hasher
				// and the Writer are done with it.
				var refs atomic.Int32
				refs.Store(2)
				put = func() {
					if refs.Add(-1) == 0 {
						r.bufs.Put(buf)
					}
				}
				hq <- hashJob{v: v, data: it.Data, put: put}
			} else {
				put = func() { r.bufs.Put(buf) }
			}
		case bacularec.KindFileEnd:
			if v := verifiers[it.File]; v != nil {
				delete(verifiers, it.File)
				done := make(chan struct{})
				hq <- hashJob{done: done}
				<-done
				v.Check(it.File)
			}
			r.digestChecked(it.File)
		}
		r.apply(i, it)
		put()
		r.pending.Done()
	}
}

// digestChecked counts a file's digest check.
func (r *runner) digestChecked(f *bacularec.File) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f.DigestChecked {
		r.s.DigestsChecked++
	}
	if f.DigestErr != nil {
		r.s.DigestMismatches++
		r.report(f.DigestErr)
	}
}

// route picks the Writer for a file's items.
func (r *runner) route(f *bacularec.File) int {
	n := len(r.writers)
	switch {
	case n == 1, f.Type.IsDir(), f.Type == bacularec.TypeDeleted:
		return 0
	case f.Type == bacularec.TypeLinkSaved:
		return int(maphash.String(r.seed, f.Link) % uint64(n))
	}
	return int(maphash.String(r.seed, f.Path) % uint64(n))
}

// barrier waits until every item sent so far has been applied.
func (r *runner) barrier() {
	if r.queues != nil {
		r.pending.Wait()
	}
}

// dispatch hands an item to its Writer: inline with one Writer, otherwise
// queued, with Data copied since the reader reuses its buffers.
func (r *runner) dispatch(it *bacularec.Item) {
	i := r.route(it.File)
	if r.queues == nil {
		r.apply(i, it)
		return
	}
	if it.File.Type == bacularec.TypeDeleted {
		// Removing a tree must see every earlier file written, and no
		// later one yet.
		r.barrier()
		r.apply(i, it)
		return
	}
	if it.Kind == bacularec.KindFileEnd && it.File.Type.IsDir() {
		// A directory's record comes after its contents: apply it after
		// them too, as in volume order (it may replace what an earlier job
		// left at its path, which changes what they can be written under).
		r.barrier()
	}
	var v *bacularec.Verifier
	if it.Kind == bacularec.KindFile && r.files != nil && isDataType(it.File.Type) {
		v = r.files.NewVerifier(it.File)
	}
	c := *it
	if it.Kind == bacularec.KindData {
		var b []byte
		if p, ok := r.bufs.Get().(*[]byte); ok {
			b = *p
		}
		c.Data = append(b[:0], it.Data...)
	} else {
		c.Data = nil
	}
	r.pending.Add(1)
	r.queues[i] <- task{&c, v}
}

func (r *runner) fatalErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fatal
}

func (r *runner) read(ctx context.Context, f *bacularec.Files) error {
	every := r.ropt.ProgressEvery
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	next := time.Now().Add(every)
	for n := 0; ; n++ {
		it, err := f.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		s := &r.s
		switch it.Kind {
		case bacularec.KindJobStart:
			s.Jobs++
			r.barrier() // jobs apply in order
		case bacularec.KindJobEnd:
			if it.Job.OK() {
				s.JobsOK++
			} else if !it.Job.Ended {
				s.JobsUnfinished++
			}
		case bacularec.KindFile:
			s.Files++
		case bacularec.KindData:
			s.Bytes += int64(len(it.Data))
		case bacularec.KindFileEnd:
			if r.queues == nil { // else counted by the workers
				r.digestChecked(it.File)
			}
			for _, c := range it.File.NotDecoded {
				s.NotDecoded[c.Stream]++
			}
		case bacularec.KindNotice:
			if !errors.Is(it.Err, bacularec.ErrShortBlock) { // nothing lost
				s.Notices++
			}
			r.mu.Lock()
			r.report(it.Err)
			r.mu.Unlock()
		}
		if r.trackLinks {
			r.track(it)
		}
		if it.File != nil {
			r.dispatch(it)
		}
		if n%256 == 0 {
			if err := r.fatalErr(); err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if r.ropt.Progress != nil && time.Now().After(next) {
				r.mu.Lock()
				snap := r.s
				r.mu.Unlock()
				r.ropt.Progress(snap)
				next = time.Now().Add(every)
			}
		}
	}
}

// finish stops the workers and closes the Writers, the first one last:
// it holds the directory records.
func (r *runner) finish() error {
	for _, q := range r.queues {
		close(q)
	}
	r.done.Wait()
	err := r.fatalErr()
	for i := len(r.writers) - 1; i >= 0; i-- {
		if cerr := r.writers[i].Close(); cerr != nil {
			r.report(cerr)
			if err == nil && IsFatal(cerr) {
				err = cerr
			}
			if !errors.Is(cerr, ErrIncomplete) { // incomplete files are counted apart
				r.s.Errors++
			}
		}
		r.s.Writer.add(r.writers[i].Stats())
	}
	return err
}

func (r *runner) closeAll() {
	for _, w := range r.writers {
		w.Close()
	}
}
