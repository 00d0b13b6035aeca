package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/atomicfile"
)

var _ Stream = (*FIFO)(nil)

// FIFOOptions configures a FIFO. The zero value is usable.
type FIFOOptions struct {
	// PipeSize is the pipe buffer asked for with F_SETPIPE_SZ (default
	// 1 MiB), capped by /proc/sys/fs/pipe-max-size.
	PipeSize int
	// CopyDir, when set, receives a copy of each pass's stream, written
	// as <CopyDir>/<VolumeName>.vol (with a timestamp when the name is
	// taken, or alone when the stream has no label) once the pass is
	// over: a volume file from which a lagging target can be caught up.
	CopyDir string
	// SpoolDir holds the stream of the current pass while CopyDir is not
	// set, so that the engine can read it again (default os.TempDir()).
	SpoolDir string
	// Idle ends a pass whose jobs all ended when the writer keeps the
	// FIFO open without writing for this long (default 5s).
	Idle time.Duration
	// Stall ends a pass with a job not ended when nothing came for this
	// long (default 1h; negative: never).
	Stall time.Duration
	// Logger receives warnings; default: discarded.
	Logger *slog.Logger
	// ReaderOptions are given to bacularec.NewReader for each pass.
	ReaderOptions []bacularec.Option
}

// FIFO reads what the storage daemon writes into a named pipe (a Bacula
// Fifo device). See the package documentation.
type FIFO struct {
	path string
	opt  FIFOOptions
	log  *slog.Logger

	rmu sync.Mutex // held while the pipe is read or waited for

	mu       sync.Mutex
	setUp    bool
	closed   bool
	rfd      int // read end, non-blocking
	evfd     int // eventfd: wakes a poll (JobEnded, Close, ctx)
	canRead  bool
	gotData  bool // data came since the writer opened
	pipeSize int
	pass     *fifoPass
	open     map[bacularec.SessionKey]uint32
	passEnd  []uint32
	endedIDs map[uint32]bool
	places   placements // offsets in the pass's spool or copy (Placed)
}

// NewFIFO returns a FIFO reading the named pipe at path. It does no I/O
// and starts no goroutine: Next creates and opens the pipe.
func NewFIFO(path string, opt FIFOOptions) *FIFO {
	if opt.PipeSize <= 0 {
		opt.PipeSize = 1 << 20
	}
	if opt.Idle <= 0 {
		opt.Idle = 5 * time.Second
	}
	if opt.Stall == 0 {
		opt.Stall = time.Hour
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &FIFO{path: path, opt: opt, log: log.With("fifo", path), rfd: -1, evfd: -1,
		open: map[bacularec.SessionKey]uint32{}, endedIDs: map[uint32]bool{}}
}

// PipeSize returns the pipe buffer size obtained, 0 before Next.
func (f *FIFO) PipeSize() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pipeSize
}

// JobEnded tells the FIFO that the storage daemon ended job jobID: a pass
// whose jobs have all ended, all announced this way, ends without waiting
// for the writer to close.
func (f *FIFO) JobEnded(jobID uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.endedIDs) > 4096 {
		clear(f.endedIDs)
	}
	f.endedIDs[jobID] = true
	f.signal()
}

// signal wakes a poll; f.mu held.
func (f *FIFO) signal() {
	if f.evfd >= 0 && !f.closed {
		var one = [8]byte{7: 1}
		unix.Write(f.evfd, one[:])
	}
}

// Close closes the pipe (the storage daemon's next open fails with
// ENXIO) and drops the stream of a pass not committed, unless copied.
func (f *FIFO) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.signal()
	f.closed = true
	f.mu.Unlock()
	f.rmu.Lock() // wait for a reader to notice
	defer f.rmu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pass != nil {
		f.pass.release()
		f.pass = nil
	}
	var err error
	if f.rfd >= 0 {
		err = unix.Close(f.rfd)
		f.rfd = -1
	}
	if f.evfd >= 0 {
		unix.Close(f.evfd)
		f.evfd = -1
	}
	return err
}

func (f *FIFO) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// setup creates the pipe if needed, opens its read end and sizes it.
//
// The read end is opened O_RDONLY|O_NONBLOCK: that open never blocks, and
// from then on the storage daemon's opens for writing succeed (no ENXIO).
// No dummy writer is kept open: the writer's close is the only end of
// stream a FIFO has, and a dummy writer would hide it. Instead, when the
// writer closes (read returns 0), a new read end is opened before the old
// one is closed, so there is always a reader, the pipe (and its size)
// lives on, and the new descriptor does not report the old hang-up: poll
// waits for the next writer. Reads only follow a poll that reported data
// or a hang-up, since a read with no writer returns 0 at once.
func (f *FIFO) setup() error {
	fi, err := os.Lstat(f.path)
	switch {
	case os.IsNotExist(err):
		if err := unix.Mkfifo(f.path, 0o660); err != nil {
			return fmt.Errorf("source: creating FIFO %s: %w", f.path, err)
		}
		if err := os.Chmod(f.path, 0o660); err != nil { // whatever the umask
			return fmt.Errorf("source: %w", err)
		}
	case err != nil:
		return fmt.Errorf("source: %w", err)
	case fi.Mode()&os.ModeNamedPipe == 0:
		return fmt.Errorf("source: %s exists and is not a FIFO", f.path)
	}
	rfd, err := unix.Open(f.path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("source: opening FIFO %s: %w", f.path, err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(rfd)
		return fmt.Errorf("source: eventfd: %w", err)
	}
	f.rfd, f.evfd, f.setUp = rfd, evfd, true
	f.pipeSize = f.resize(rfd)
	return nil
}

// resize raises the pipe buffer toward opt.PipeSize.
func (f *FIFO) resize(fd int) int {
	want := f.opt.PipeSize
	if b, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil {
		if max, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && max > 0 && want > max {
			f.log.Warn("pipe buffer limited by /proc/sys/fs/pipe-max-size", "asked", want, "max", max)
			want = max
		}
	}
	got, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, want)
	if err != nil {
		cur, _ := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
		f.log.Warn("cannot raise the pipe buffer", "asked", want, "size", cur, "err", err)
		return cur
	}
	if got < f.opt.PipeSize && want == f.opt.PipeSize {
		f.log.Warn("pipe buffer smaller than asked", "asked", want, "size", got)
	}
	return got
}

// reopen replaces the read end after the writer closed; f.mu held.
func (f *FIFO) reopen() error {
	fd, err := unix.Open(f.path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("source: reopening FIFO %s: %w", f.path, err)
	}
	unix.Close(f.rfd)
	f.rfd = fd
	f.canRead = false
	return nil
}

var errWriterClosed = errors.New("writer closed")

// read reads what is in the pipe into b without waiting. It returns 0, nil
// when there is nothing yet, errWriterClosed when a writer that wrote
// closed; the open/close cycles without data of the labelling are
// absorbed.
func (f *FIFO) read(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, ErrClosed
	}
	for f.canRead {
		n, err := unix.Read(f.rfd, b)
		switch {
		case n > 0:
			f.gotData = true
			return n, nil
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			f.canRead = false
		case err != nil:
			return 0, fmt.Errorf("source: reading FIFO %s: %w", f.path, err)
		default: // no writer left
			if err := f.reopen(); err != nil {
				return 0, err
			}
			if f.gotData {
				f.gotData = false
				return 0, errWriterClosed
			}
			f.log.Debug("the writer opened and closed the FIFO without writing")
		}
	}
	return 0, nil
}

// wait polls the pipe for up to d (negative: no limit), waking early for
// JobEnded, Close or the end of ctx.
func (f *FIFO) wait(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrClosed
	}
	fds := []unix.PollFd{{Fd: int32(f.rfd), Events: unix.POLLIN}, {Fd: int32(f.evfd), Events: unix.POLLIN}}
	f.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		f.mu.Lock()
		f.signal()
		f.mu.Unlock()
	})
	defer stop()
	ms := -1
	if d >= 0 {
		ms = int(min(d, time.Hour).Milliseconds()) + 1
	}
	_, err := unix.Poll(fds, ms)
	if err != nil && err != unix.EINTR {
		return fmt.Errorf("source: poll: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fds[1].Revents != 0 {
		var buf [8]byte
		unix.Read(f.evfd, buf[:])
	}
	if fds[0].Revents != 0 {
		f.canRead = true
	}
	if f.closed {
		return ErrClosed
	}
	return ctx.Err()
}

// Next opens the pipe (creating it) on first use, waits for data and
// returns the Source of the next pass. Its first call reads the pipe: the
// pass ends once a writer that wrote blocks closed the FIFO with every job
// it began ended (EOS read), or when JobEnded announced them all, or Idle
// after they ended while the writer keeps the FIFO open, or Stall without
// data. Called again, the Source reads the pass's stream from its spool
// (or copy) file.
func (f *FIFO) Next(ctx context.Context) (func(context.Context) (*bacularec.Files, error), error) {
	f.rmu.Lock()
	defer f.rmu.Unlock()
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, ErrClosed
	}
	if !f.setUp {
		if err := f.setup(); err != nil {
			f.mu.Unlock()
			return nil, err
		}
	}
	if f.pass != nil {
		f.pass.release()
		f.pass = nil
	}
	f.mu.Unlock()
	for {
		f.mu.Lock()
		fds := []unix.PollFd{{Fd: int32(f.rfd), Events: unix.POLLIN}}
		_, err := unix.Poll(fds, 0)
		data := err == nil && fds[0].Revents&unix.POLLIN != 0
		hup := err == nil && !data && fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0
		if data {
			f.canRead = true
		}
		if hup {
			// The writer of the last pass closed after the pass ended
			// (JobEnded, Idle), or a labelling open/close.
			f.gotData = false
			err = f.reopen()
		}
		f.mu.Unlock()
		if err != nil && err != unix.EINTR {
			return nil, fmt.Errorf("source: poll: %w", err)
		}
		if data {
			break
		}
		if hup {
			continue
		}
		if err := f.wait(ctx, -1); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := &fifoPass{f: f}
	f.pass = p
	f.passEnd = f.passEnd[:0]
	f.places = placements{}
	return p.open, nil
}

// Placed implements Placer. With CopyDir the jobs lie in the copy of the
// last pass; without, in nothing that outlives Commit: they come with
// Gone set.
func (f *FIFO) Placed() []JobPlace {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.places.list()
	p := f.pass
	for i := range out {
		if out[i].Gone != "" {
			continue
		}
		if p == nil || !p.keep {
			why := "the FIFO stream is not kept (fifo_copy_dir is not set)"
			if f.opt.CopyDir != "" {
				why = "the FIFO stream of the pass was not kept in " + f.opt.CopyDir + " (pass interrupted, or the copy failed)"
			}
			out[i].Extents, out[i].Gone = nil, why
			continue
		}
		for j := range out[i].Extents {
			out[i].Extents[j].Path, out[i].Extents[j].Volume = p.path, p.id
		}
	}
	return out
}

// Commit drops the spool of the last pass (the copy, if any, stays).
func (f *FIFO) Commit() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pass != nil {
		f.pass.release()
	}
	return nil
}

// fifoPass is one pass over the pipe and the file its stream is kept in.
type fifoPass struct {
	f        *FIFO
	started  bool
	spool    *os.File
	path     string   // spool or copy
	keep     bool     // path is the copy: never removed
	id       VolumeID // the copy's label (zero: none)
	released bool
}

func (p *fifoPass) open(ctx context.Context) (*bacularec.Files, error) {
	f := p.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	if f.pass != p || p.released {
		return nil, ErrStalePass
	}
	opts := append([]bacularec.Option{bacularec.WithVolumeName(f.path)}, f.opt.ReaderOptions...)
	if p.started {
		fh, err := os.Open(p.path)
		if err != nil {
			return nil, fmt.Errorf("source: reading the stream again: %w", err)
		}
		return bacularec.NewFiles(bacularec.NewReader(fh, opts...)), nil
	}
	p.started = true
	var err error
	if f.opt.CopyDir != "" {
		p.spool, err = os.CreateTemp(f.opt.CopyDir, ".fifo-*.part")
	} else {
		p.spool, err = os.CreateTemp(f.opt.SpoolDir, "brc-fifo-*.spool")
	}
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	p.path = p.spool.Name()
	r := &fifoReader{p: p, ctx: ctx, last: time.Now()}
	return bacularec.NewFiles(bacularec.NewReader(r, opts...)), nil
}

// release removes the spool unless it became the copy; f.mu held.
func (p *fifoPass) release() {
	if p.released {
		return
	}
	p.released = true
	if p.spool != nil {
		p.spool.Close()
		p.spool = nil
	}
	if !p.keep && p.path != "" {
		os.Remove(p.path)
	}
}

// finish syncs the stream and, with CopyDir, puts the copy in place.
func (p *fifoPass) finish(label *bacularec.VolumeLabel) error {
	if p.spool == nil {
		return nil
	}
	if err := p.spool.Sync(); err != nil {
		return err
	}
	if err := p.spool.Close(); err != nil {
		return err
	}
	p.spool = nil
	dir := p.f.opt.CopyDir
	if dir == "" {
		return nil
	}
	now := time.Now().UTC().Format("20060102T150405.000000000Z")
	base := now
	if label != nil && label.VolumeName != "" {
		base = strings.NewReplacer("/", "_", "\x00", "_").Replace(label.VolumeName)
		if strings.HasPrefix(base, ".") {
			base = "_" + base
		}
	}
	base = strings.TrimSuffix(base, ".vol")
	for _, name := range []string{base + ".vol", base + "-" + now + ".vol"} {
		final := filepath.Join(dir, name)
		// link(2) never replaces an existing file.
		if err := os.Link(p.path, final); err != nil {
			if os.IsExist(err) {
				continue
			}
			return err
		}
		os.Remove(p.path)
		p.path, p.keep = final, true
		if id, ready, err := readLabel(final); err == nil && ready {
			p.id = id
		}
		return atomicfile.SyncDir(dir)
	}
	return fmt.Errorf("copy of the stream: %s.vol exists", base)
}

// fifoReader frames the pipe's bytes into whole blocks by their header's
// BlockLength, hands them out one per Read at most, and keeps them in the
// spool.
type fifoReader struct {
	p            *fifoPass
	ctx          context.Context
	hdr          [32]byte
	blk          []byte
	buf          []byte
	pos          int
	eof          bool
	delivered    bool
	writerClosed bool
	last         time.Time
	label        *bacularec.VolumeLabel
	spooled      int64 // bytes written to the spool: where the next block goes
}

var errPassOver = errors.New("pass over")

func (r *fifoReader) Read(b []byte) (int, error) {
	if r.pos < len(r.buf) {
		n := copy(b, r.buf[r.pos:])
		r.pos += n
		return n, nil
	}
	if r.eof {
		return 0, io.EOF
	}
	f := r.p.f
	f.rmu.Lock()
	defer f.rmu.Unlock()
	f.mu.Lock()
	stale := f.pass != r.p || r.p.released
	f.mu.Unlock()
	if stale {
		return 0, ErrStalePass
	}
	for {
		blk, err := r.frame()
		if err == errPassOver {
			r.eof = true
			f.mu.Lock()
			for _, id := range f.passEnd {
				delete(f.endedIDs, id)
			}
			clear(f.open) // jobs not ended: their rest, if any, comes in the next pass
			clear(f.places.open)
			ferr := r.p.finish(r.label)
			f.mu.Unlock()
			if ferr != nil {
				f.log.Error("keeping the stream", "err", ferr)
			}
			return 0, io.EOF
		}
		if err != nil {
			return 0, err
		}
		if blk == nil {
			continue // a block cut short by the writer's close
		}
		if _, err := r.p.spool.Write(blk); err != nil {
			return 0, fmt.Errorf("source: spooling the stream: %w", err)
		}
		r.spooled += int64(len(blk))
		r.buf = blk
		r.pos = copy(b, blk)
		return r.pos, nil
	}
}

func (r *fifoReader) Close() error { return nil }

// frame reads one whole block. It returns nil, nil for a block cut short.
func (r *fifoReader) frame() ([]byte, error) {
	f := r.p.f
	if n, err := r.fill(r.hdr[:minHeader], true); err != nil {
		if err == errWriterClosed && n > 0 {
			f.log.Warn("the writer closed the FIFO inside a block header: bytes dropped", "bytes", n)
			return nil, nil
		}
		if err == errWriterClosed {
			return nil, nil
		}
		return nil, err
	}
	_, hl, err := headerLen(r.hdr[:])
	length := 0
	if err == nil {
		if n, err2 := r.fill(r.hdr[minHeader:hl], false); err2 != nil {
			if err2 == errWriterClosed {
				f.log.Warn("the writer closed the FIFO inside a block header: bytes dropped", "bytes", minHeader+n)
				return nil, nil
			}
			return nil, err2
		}
		length, err = blockLength(r.hdr[:])
	}
	if err != nil {
		// Framing is lost: skip the rest of this writer's stream.
		f.log.Error("damaged stream: dropping what this writer sends", "err", err)
		var junk [16 << 10]byte
		for {
			if _, err := r.fill(junk[:], false); err == errWriterClosed {
				return nil, nil
			} else if err != nil {
				return nil, err
			}
		}
	}
	if cap(r.blk) < length {
		r.blk = make([]byte, length)
	}
	blk := r.blk[:length]
	copy(blk, r.hdr[:hl])
	if n, err := r.fill(blk[hl:], false); err != nil {
		if err == errWriterClosed {
			f.log.Warn("the writer closed the FIFO inside a block: block dropped", "length", length, "had", hl+n)
			return nil, nil
		}
		return nil, err
	}
	bi, err := parseBlock(blk)
	if err != nil {
		return nil, err
	}
	r.track(&bi)
	r.delivered = true
	return blk, nil
}

// track follows the jobs of the pass: open from their first block to
// their EOS.
func (r *fifoReader) track(bi *blockInfo) {
	f := r.p.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.label == nil && bi.label != nil {
		r.label = bi.label
	}
	// The block is spooled right after: at r.spooled. The file is named
	// once the pass is over (Placed).
	off, end := r.spooled, r.spooled+int64(bi.length)
	for _, s := range bi.sos {
		f.open[s.key] = s.jobID
		untracked := ""
		if bi.version < 2 {
			untracked = "the stream is BB01 (Bacula 1.26 or older): jobs are not located in it"
		}
		f.places.start(s, "", VolumeID{}, off, end, untracked)
	}
	if bi.version >= 2 && !bi.onlyLabel {
		if _, ok := f.open[bi.session]; !ok && !slicesContains(bi.eos, bi.session) {
			f.open[bi.session] = 0 // met without its start
		}
		f.places.extend(bi.session, "", VolumeID{}, off, end)
	}
	for _, k := range bi.eos {
		if id, ok := f.open[k]; ok {
			delete(f.open, k)
			f.passEnd = append(f.passEnd, id)
			f.places.end(k)
		}
	}
}

func slicesContains(ks []bacularec.SessionKey, k bacularec.SessionKey) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// fill reads len(b) bytes. At a block boundary it ends the pass when its
// conditions are met instead of waiting. It returns errWriterClosed with
// the bytes read when the writer closed first.
func (r *fifoReader) fill(b []byte, boundary bool) (int, error) {
	f := r.p.f
	got := 0
	for got < len(b) {
		n, err := f.read(b[got:])
		if n > 0 {
			got += n
			r.last = time.Now()
			r.writerClosed = false
			continue
		}
		if err == errWriterClosed {
			r.writerClosed = true
			r.last = time.Now()
			return got, err
		}
		if err != nil {
			return got, err
		}
		d := time.Duration(-1)
		if boundary && got == 0 {
			over, left := r.over()
			if over {
				return 0, errPassOver
			}
			d = left
		}
		if err := f.wait(r.ctx, d); err != nil {
			return got, err
		}
	}
	return got, nil
}

// over reports whether the pass is over, and otherwise how long to wait
// before asking again (negative: until something happens).
func (r *fifoReader) over() (bool, time.Duration) {
	f := r.p.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if !r.delivered {
		return false, -1
	}
	quiet := time.Since(r.last)
	if len(f.open) > 0 {
		if f.opt.Stall < 0 {
			return false, -1
		}
		if quiet >= f.opt.Stall {
			f.log.Warn("no data for a job still running: ending the pass", "quiet", quiet.Round(time.Millisecond))
			return true, 0
		}
		return false, f.opt.Stall - quiet
	}
	if r.writerClosed {
		return true, 0
	}
	if len(f.passEnd) > 0 {
		all := true
		for _, id := range f.passEnd {
			all = all && id != 0 && f.endedIDs[id]
		}
		if all {
			return true, 0
		}
	}
	if quiet >= f.opt.Idle {
		return true, 0
	}
	return false, f.opt.Idle - quiet
}
