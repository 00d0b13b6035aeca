package source

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/atomicfile"
)

// OpenFunc opens the records of one pass. It has the underlying type of
// replica.Source, so it can be handed to replica.Engine.Run as is.
type OpenFunc = func(ctx context.Context) (*bacularec.Files, error)

// Stream is what Follow and FIFO have in common: a source of passes for
// the replication engine.
type Stream interface {
	// Next waits until there is something new to read and returns the
	// Source of the next pass.
	Next(ctx context.Context) (func(context.Context) (*bacularec.Files, error), error)
	// Commit persists (Follow) or releases (FIFO) what the last pass read.
	// Call it after Engine.Run returned.
	Commit() error
	// JobEnded tells the stream the storage daemon ended a job, so that a
	// pass waiting for more data can end now.
	JobEnded(jobID uint32)
	// Close releases the stream. It does not commit.
	Close() error
}

var _ Stream = (*Follow)(nil)

// Errors.
var (
	// ErrClosed is returned by a closed stream and by its Sources.
	ErrClosed = errors.New("source: closed")
	// ErrStalePass is returned by the Source of a pass when a later pass
	// was started with Next.
	ErrStalePass = errors.New("source: the pass is over: a later one was started")
)

// FollowOptions configures a Follow. The zero value is usable.
type FollowOptions struct {
	// Idle ends a pass once every job read has ended and nothing new came
	// for this long (default 5s).
	Idle time.Duration
	// Stall ends a pass even though a job read has not ended, when nothing
	// new came for this long (default 1h; negative: never). The job is
	// then reported unfinished, and read again whole by the next pass.
	Stall time.Duration
	// PollInterval is how often the directory is looked at when inotify
	// is not available (default 500ms).
	PollInterval time.Duration
	// NoInotify makes Follow poll instead of using inotify.
	NoInotify bool
	// Logger receives warnings (recycled volumes, damaged or foreign
	// data); default: discarded.
	Logger *slog.Logger
	// OnRecycle, when set, is called (with the Follow locked: it must not
	// call back into it) for each volume found recycled: truncated,
	// replaced or relabelled. The volume is then read again from its
	// start.
	OnRecycle func(volume, reason string)
	// ReaderOptions are given to bacularec.NewReader for each pass.
	ReaderOptions []bacularec.Option
}

// Follow reads the volumes of a Bacula File device directory while the
// storage daemon writes them. See the package documentation.
type Follow struct {
	dir       string
	statePath string
	opt       FollowOptions
	log       *slog.Logger

	wake     chan struct{} // inotify events, JobEnded
	closedCh chan struct{}

	mu       sync.Mutex
	loaded   bool
	closed   bool
	vols     []*volume // reading order: label write time, then name
	byName   map[string]*volume
	ignored  map[string]fileSig // files that are not volumes
	open     map[bacularec.SessionKey]*openSession
	ended    map[bacularec.SessionKey]bool
	foreign  map[bacularec.SessionKey]bool
	maxTime  uint32
	endedIDs map[uint32]bool // from JobEnded
	passEnd  []uint32        // JobIDs of the jobs ended in this pass (0: unknown)
	lastData time.Time
	pass     *followPass
	places   placements // where the jobs of the pass lie (Placed)
	blkbuf   []byte
	watching bool
	stop     func()
}

type fileSig struct {
	ino   uint64
	size  int64
	mtime int64
}

type volume struct {
	name, path string
	id         VolumeID
	ready      bool // a VOL_LABEL block is there
	verified   bool // the label was checked against the file (state)
	sig        fileSig
	cursor     int64 // next block to read in this pass
	acked      int64 // read (and consumed) up to here
	pin        int64 // resume point loaded from the state, -1: none
	f          *os.File
	broken     error
}

type openSession struct {
	jobID uint32
	first map[string]int64 // per volume, the offset of the session's first block there
}

// NewFollow returns a Follow of the volumes in dir that keeps its position
// in statePath. It does no I/O and starts no goroutine: Next does.
func NewFollow(dir, statePath string, opt FollowOptions) *Follow {
	if opt.Idle <= 0 {
		opt.Idle = 5 * time.Second
	}
	if opt.Stall == 0 {
		opt.Stall = time.Hour
	}
	if opt.PollInterval <= 0 {
		opt.PollInterval = 500 * time.Millisecond
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Follow{
		dir: dir, statePath: statePath, opt: opt, log: log.With("volume_dir", dir),
		wake: make(chan struct{}, 1), closedCh: make(chan struct{}),
		byName: map[string]*volume{}, ignored: map[string]fileSig{},
		open: map[bacularec.SessionKey]*openSession{}, ended: map[bacularec.SessionKey]bool{},
		foreign: map[bacularec.SessionKey]bool{}, endedIDs: map[uint32]bool{},
	}
}

// JobEnded tells Follow that the storage daemon ended job jobID. A pass
// whose jobs have all ended, all of them announced this way, ends without
// waiting for Idle.
func (f *Follow) JobEnded(jobID uint32) {
	f.mu.Lock()
	if len(f.endedIDs) > 4096 {
		clear(f.endedIDs)
	}
	f.endedIDs[jobID] = true
	f.mu.Unlock()
	f.poke()
}

func (f *Follow) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Close stops watching the directory and closes the volumes. It does not
// commit; Sources of the Follow fail with ErrClosed.
func (f *Follow) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	close(f.closedCh)
	f.closeFiles()
	stop := f.stop
	f.stop = nil
	f.mu.Unlock()
	if stop != nil {
		stop()
	}
	return nil
}

func (f *Follow) closeFiles() {
	for _, v := range f.vols {
		if v.f != nil {
			v.f.Close()
			v.f = nil
		}
	}
}

// Next waits until a volume holds a whole block not read yet (a new
// volume, a volume that grew, a recycled one) and returns the Source of
// the next pass. The pass starts where the previous one stopped, or, when
// a job was left unfinished, at that job's first block.
//
// The Source reads live the first time it is called: at the end of the
// data it waits for more, and the pass ends once every job read has ended
// and nothing new came for Idle (or JobEnded announced them all), or after
// Stall without data. Called again (the engine replays a job for a target
// that failed or lagged), it reads the same blocks again, without
// waiting. Starting the next pass makes its Sources fail with
// ErrStalePass.
func (f *Follow) Next(ctx context.Context) (func(context.Context) (*bacularec.Files, error), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	if !f.loaded {
		if err := f.load(); err != nil {
			return nil, err
		}
	}
	if !f.watching && !f.opt.NoInotify {
		f.watching = true
		stop, err := watchDir(f.dir, f.wake)
		if err != nil {
			f.log.Warn("inotify not available, polling", "every", f.opt.PollInterval, "err", err)
		}
		f.stop = stop
	}
	for {
		if _, err := f.rescan(); err != nil {
			return nil, err
		}
		if f.hasNew() {
			break
		}
		if err := f.waitUnlocked(ctx, f.tick()); err != nil {
			return nil, err
		}
	}
	pinned := false
	for _, v := range f.vols {
		v.cursor = f.resume(v)
		pinned = pinned || v.pin >= 0
	}
	if len(f.open) == 0 && !pinned {
		// Every block of the jobs that ended lies before the read
		// positions: none can be met again.
		clear(f.ended)
	}
	f.passEnd = f.passEnd[:0]
	f.places.ended = nil
	f.lastData = time.Now()
	p := &followPass{f: f}
	f.pass = p
	return p.open, nil
}

// Placed implements Placer: the jobs the last pass read whole and the
// volume files and offsets that hold them, with the labelling each
// volume was read under.
func (f *Follow) Placed() []JobPlace {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.places.list()
}

// Commit saves the position reached: for each volume, where to start
// again (the end of what the engine consumed, or the first block of the
// oldest job not finished) with the label it was read under. Call it after
// Engine.Run returned; it is safe after a Run that failed too, since only
// blocks the engine consumed count as read.
func (f *Follow) Commit() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.loaded {
		return nil
	}
	st := followState{Version: stateVersion, Dir: f.dir, MaxTime: f.maxTime}
	pinned := false
	for _, v := range f.vols {
		if !v.ready {
			continue
		}
		st.Volumes = append(st.Volumes, volumeState{Name: v.name, Label: v.id, Resume: f.resume(v), Read: v.acked})
		pinned = pinned || v.pin >= 0
	}
	if len(f.open) > 0 || pinned {
		st.Ended = sortedKeys(f.ended)
	}
	st.Foreign = sortedKeys(f.foreign)
	b, err := json.MarshalIndent(&st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(f.statePath, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("source: saving the position: %w", err)
	}
	return nil
}

func sortedKeys(m map[bacularec.SessionKey]bool) []bacularec.SessionKey {
	ks := slices.Collect(maps.Keys(m))
	slices.SortFunc(ks, func(a, b bacularec.SessionKey) int {
		return cmp.Or(cmp.Compare(a.Time, b.Time), cmp.Compare(a.ID, b.ID))
	})
	return ks
}

func (f *Follow) load() error {
	st, err := loadState(f.statePath)
	if err != nil {
		return err
	}
	f.loaded = true
	if st == nil {
		return nil
	}
	for _, vs := range st.Volumes {
		v := &volume{name: vs.Name, path: filepath.Join(f.dir, vs.Name), id: vs.Label, ready: true,
			acked: vs.Read, pin: min(vs.Resume, vs.Read)}
		f.byName[v.name] = v
		f.vols = append(f.vols, v)
	}
	for _, k := range st.Ended {
		f.ended[k] = true
	}
	for _, k := range st.Foreign {
		f.foreign[k] = true
	}
	f.maxTime = st.MaxTime
	return nil
}

// resume returns where a pass starting now reads v from.
func (f *Follow) resume(v *volume) int64 {
	r := v.acked
	if v.pin >= 0 && v.pin < r {
		r = v.pin
	}
	for _, s := range f.open {
		if o, ok := s.first[v.name]; ok && o < r {
			r = o
		}
	}
	return r
}

// hasNew reports whether a volume has a whole block past what was read.
func (f *Follow) hasNew() bool {
	for _, v := range f.vols {
		if v.ready && v.broken == nil && v.sig.size > v.acked {
			if n, err := f.blockAt(v, v.acked); err == nil && n > 0 {
				return true
			}
		}
	}
	return false
}

// blockAt returns the length of the whole block at off in v, or 0 when it
// is not all there yet.
func (f *Follow) blockAt(v *volume, off int64) (int, error) {
	if err := f.openVolume(v); err != nil {
		return 0, err
	}
	var h [minHeader]byte
	n, err := v.f.ReadAt(h[:], off)
	if n < len(h) {
		if err != nil && err != io.EOF {
			return 0, err
		}
		return 0, nil
	}
	length, err := blockLength(h[:])
	if err != nil {
		v.broken = fmt.Errorf("volume %s offset %d: %w", v.name, off, err)
		f.log.Error("damaged volume: not read further until it is recycled", "volume", v.name, "offset", off, "err", err)
		return 0, v.broken
	}
	fi, err := v.f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Size() < off+int64(length) {
		return 0, nil
	}
	return length, nil
}

func (f *Follow) openVolume(v *volume) error {
	if v.f != nil {
		return nil
	}
	fh, err := os.Open(v.path)
	if err != nil {
		return err
	}
	v.f = fh
	return nil
}

// nextBlock finds the next whole block to hand out, volumes taken in
// order. Blocks of jobs already delivered whole, or met without their
// start, are skipped (and count as read). It returns a nil block when
// none is there.
func (f *Follow) nextBlock() (*volume, int64, []byte, *blockInfo, error) {
	for _, v := range f.vols {
		for v.ready && v.broken == nil && v.cursor < v.sig.size {
			n, err := f.blockAt(v, v.cursor)
			if err != nil || n == 0 {
				break
			}
			if cap(f.blkbuf) < n {
				f.blkbuf = make([]byte, n)
			}
			blk := f.blkbuf[:n]
			if m, err := v.f.ReadAt(blk, v.cursor); m < n {
				if err == io.EOF {
					break
				}
				return nil, 0, nil, nil, fmt.Errorf("source: reading volume %s: %w", v.name, err)
			}
			bi, err := parseBlock(blk)
			if err != nil {
				v.broken = fmt.Errorf("volume %s offset %d: %w", v.name, v.cursor, err)
				f.log.Error("damaged volume: not read further until it is recycled", "volume", v.name, "offset", v.cursor, "err", err)
				break
			}
			off := v.cursor
			v.cursor += int64(n)
			if f.deliver(&bi) {
				return v, off, blk, &bi, nil
			}
			f.apply(v, off, &bi, false)
		}
	}
	return nil, 0, nil, nil, nil
}

// deliver decides whether a block goes to the engine.
func (f *Follow) deliver(bi *blockInfo) bool {
	if bi.label != nil || bi.version == 1 {
		return true
	}
	k := bi.session
	if f.ended[k] || f.foreign[k] {
		return false
	}
	return f.open[k] != nil || bi.hasSOS(k)
}

// apply records a block as read: called when the engine consumed it (the
// next read after it), or at once for a skipped block.
func (f *Follow) apply(v *volume, off int64, bi *blockInfo, delivered bool) {
	v.acked = max(v.acked, off+int64(bi.length))
	if !delivered {
		k := bi.session
		if !f.ended[k] && !f.foreign[k] {
			f.foreign[k] = true
			f.log.Warn("job met without its start label (it began before what was read): skipped",
				"session", k.String(), "volume", v.name, "offset", off)
		}
		for _, e := range bi.eos {
			delete(f.foreign, e)
		}
		return
	}
	end := off + int64(bi.length)
	for _, s := range bi.sos {
		f.maxTime = max(f.maxTime, s.key.Time)
		f.open[s.key] = &openSession{jobID: s.jobID, first: map[string]int64{v.name: off}}
		untracked := ""
		if bi.version < 2 {
			untracked = "its volume is BB01 (Bacula 1.26 or older): jobs are not located in it"
		}
		f.places.start(s, v.path, v.id, off, end, untracked)
	}
	if bi.version >= 2 {
		if s := f.open[bi.session]; s != nil {
			if _, ok := s.first[v.name]; !ok {
				s.first[v.name] = off
			}
		}
		f.places.extend(bi.session, v.path, v.id, off, end)
	}
	for _, k := range bi.eos {
		if s := f.open[k]; s != nil {
			delete(f.open, k)
			f.ended[k] = true
			f.passEnd = append(f.passEnd, s.jobID)
			f.places.end(k)
		}
	}
}

// passOver reports whether the live read of a pass is over, the data
// being all read.
func (f *Follow) passOver() bool {
	quiet := time.Since(f.lastData)
	if len(f.open) == 0 {
		if quiet >= f.opt.Idle {
			return true
		}
		if len(f.passEnd) == 0 {
			return false
		}
		for _, id := range f.passEnd {
			if id == 0 || !f.endedIDs[id] {
				return false
			}
		}
		return true
	}
	if f.opt.Stall > 0 && quiet >= f.opt.Stall {
		for k, s := range f.open {
			f.log.Warn("no data for a job still running: ending the pass; the job is read again next time",
				"session", k.String(), "jobid", s.jobID, "quiet", quiet.Round(time.Millisecond))
		}
		return true
	}
	return false
}

// endPass closes the live read of a pass.
func (f *Follow) endPass() {
	for k, s := range f.open {
		if k.Time < f.maxTime {
			// The storage daemon restarted since the job began: it will
			// never end.
			f.log.Warn("job abandoned by a storage daemon restart: given up", "session", k.String(), "jobid", s.jobID)
			delete(f.open, k)
			f.places.drop(k)
			f.ended[k] = true
		}
	}
	for _, v := range f.vols {
		v.pin = -1
	}
	for _, id := range f.passEnd {
		delete(f.endedIDs, id)
	}
	f.closeFiles()
}

// tick is how long to wait before looking again.
func (f *Follow) tick() time.Duration {
	if f.stop != nil {
		return 2 * time.Second // inotify wakes us; this is a safety net
	}
	return f.opt.PollInterval
}

// waitUnlocked waits for d, an inotify event or JobEnded, with f.mu
// released.
func (f *Follow) waitUnlocked(ctx context.Context, d time.Duration) error {
	f.mu.Unlock()
	defer f.mu.Lock()
	t := time.NewTimer(max(d, time.Millisecond))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-f.closedCh:
		return ErrClosed
	case <-f.wake:
	case <-t.C:
	}
	return nil
}

// rescan looks at the directory: new volumes, volumes that grew, shrank,
// were replaced, relabelled or removed. It reports whether anything
// changed.
func (f *Follow) rescan() (bool, error) {
	ents, err := os.ReadDir(f.dir)
	if err != nil {
		return false, fmt.Errorf("source: %w", err)
	}
	statePath, _ := filepath.Abs(f.statePath)
	changed := false
	seen := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(f.dir, name)
		if ap, _ := filepath.Abs(p); ap == statePath {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			continue // removed meanwhile
		}
		sig := fileSig{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			sig.ino = st.Ino
		}
		seen[name] = true
		if v := f.byName[name]; v != nil {
			if v.sig == sig {
				continue
			}
			changed = true
			f.checkVolume(v, sig)
			continue
		}
		if old, ok := f.ignored[name]; ok && old == sig {
			continue
		}
		id, ready, err := readLabel(p)
		if err != nil {
			if _, ok := f.ignored[name]; !ok {
				f.log.Info("not a volume: ignored", "file", name, "err", err)
			}
			f.ignored[name] = sig
			continue
		}
		delete(f.ignored, name)
		v := &volume{name: name, path: p, id: id, ready: ready, verified: true, sig: sig, pin: -1}
		f.byName[name] = v
		f.vols = append(f.vols, v)
		changed = true
		if ready {
			f.log.Info("new volume", "volume", name, "label", id.VolumeName)
		}
	}
	for name := range f.ignored {
		if !seen[name] {
			delete(f.ignored, name)
		}
	}
	f.vols = slices.DeleteFunc(f.vols, func(v *volume) bool {
		if seen[v.name] {
			return false
		}
		f.log.Warn("volume removed", "volume", v.name, "read", v.acked)
		f.dropSessions(v, "its volume was removed")
		if v.f != nil {
			v.f.Close()
		}
		delete(f.byName, v.name)
		changed = true
		return true
	})
	slices.SortStableFunc(f.vols, func(a, b *volume) int {
		return cmp.Or(cmp.Compare(a.id.WriteTime, b.id.WriteTime), strings.Compare(a.name, b.name))
	})
	if changed {
		f.lastData = time.Now()
	}
	return changed, nil
}

// checkVolume looks at a known volume whose file changed.
func (f *Follow) checkVolume(v *volume, sig fileSig) {
	old := v.sig
	v.sig = sig
	switch {
	case old.ino != 0 && sig.ino != old.ino:
		f.recycle(v, "the file was replaced")
		return
	case sig.size < max(v.acked, v.cursor):
		f.recycle(v, fmt.Sprintf("the file shrank to %d bytes (read up to %d)", sig.size, max(v.acked, v.cursor)))
		return
	}
	id, ready, err := readLabel(v.path)
	switch {
	case err != nil:
		if v.ready {
			f.recycle(v, fmt.Sprintf("its first block is no longer a volume label: %v", err))
		}
	case !ready:
		if v.ready {
			f.recycle(v, "its label is being rewritten")
		}
	case !v.ready:
		v.id, v.ready, v.verified = id, true, true
		f.log.Info("new volume", "volume", v.name, "label", id.VolumeName)
	case id != v.id:
		if v.verified {
			f.recycle(v, "it was relabelled")
		} else {
			f.recycle(v, "its label changed since the position was saved")
		}
		v.id, v.ready = id, true
	}
	v.verified = v.ready
}

// recycle starts v again from its beginning.
func (f *Follow) recycle(v *volume, reason string) {
	f.log.Warn("volume recycled: reading it again from the start", "volume", v.name, "reason", reason, "was_read", v.acked)
	if f.opt.OnRecycle != nil {
		f.opt.OnRecycle(v.name, reason)
	}
	if v.f != nil {
		v.f.Close()
		v.f = nil
	}
	f.dropSessions(v, "its volume was recycled")
	v.cursor, v.acked, v.pin, v.broken = 0, 0, -1, nil
	id, ready, err := readLabel(v.path)
	v.ready = err == nil && ready
	if v.ready {
		v.id = id
	}
	v.verified = v.ready
}

// dropSessions gives up the jobs that were being read in v.
func (f *Follow) dropSessions(v *volume, why string) {
	for k, s := range f.open {
		if _, ok := s.first[v.name]; ok {
			f.log.Warn("job given up: "+why, "session", k.String(), "jobid", s.jobID, "volume", v.name)
			delete(f.open, k)
			f.places.drop(k)
			f.ended[k] = true
		}
	}
}

// readLabel reads the label block of a volume file. ready is false while
// the block is not all there, or holds a PRE_LABEL (labelled, never
// written: the storage daemon rewrites it at first use).
func readLabel(path string) (VolumeID, bool, error) {
	fh, err := os.Open(path)
	if err != nil {
		return VolumeID{}, false, err
	}
	defer fh.Close()
	return readLabelAt(fh)
}

// readLabelAt is readLabel on an open file: checking the file that is
// then read leaves no room for a replacement in between.
func readLabelAt(fh io.ReaderAt) (VolumeID, bool, error) {
	var h [minHeader]byte
	if n, _ := fh.ReadAt(h[:], 0); n < len(h) {
		return VolumeID{}, false, nil
	}
	n, err := blockLength(h[:])
	if err != nil {
		return VolumeID{}, false, err
	}
	blk := make([]byte, n)
	if m, _ := fh.ReadAt(blk, 0); m < n {
		return VolumeID{}, false, nil
	}
	bi, err := parseBlock(blk)
	if err != nil {
		return VolumeID{}, false, err
	}
	if bi.label == nil {
		return VolumeID{}, false, errors.New("the first block holds no volume label")
	}
	if bi.preLabel {
		return VolumeID{}, false, nil
	}
	l := bi.label
	id := VolumeID{VolumeName: l.VolumeName, CRC: crc32.ChecksumIEEE(blk)}
	if !l.LabelTime.IsZero() {
		id.LabelTime = l.LabelTime.UnixMicro()
	}
	if !l.WriteTime.IsZero() {
		id.WriteTime = l.WriteTime.UnixMicro()
	}
	return id, true, nil
}

// followPass is one pass: its live read, and the blocks it handed out, so
// that it can be read again.
type followPass struct {
	f       *Follow
	started bool
	segs    []segment
}

type segment struct {
	path     string
	off, end int64
}

func (p *followPass) open(ctx context.Context) (*bacularec.Files, error) {
	f := p.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	if f.pass != p {
		return nil, ErrStalePass
	}
	opts := append([]bacularec.Option{bacularec.WithVolumeName(f.dir)}, f.opt.ReaderOptions...)
	if !p.started {
		p.started = true
		return bacularec.NewFiles(bacularec.NewReader(&liveReader{p: p, ctx: ctx}, opts...)), nil
	}
	return bacularec.NewFiles(bacularec.NewReader(&segReader{segs: slices.Clone(p.segs)}, opts...)), nil
}

func (p *followPass) add(path string, off, end int64) {
	if n := len(p.segs); n > 0 && p.segs[n-1].path == path && p.segs[n-1].end == off {
		p.segs[n-1].end = end
		return
	}
	p.segs = append(p.segs, segment{path, off, end})
}

// liveReader hands out whole blocks, one per Read at most, waiting at the
// end of the data. bacularec reads through a bufio.Reader that calls Read
// only once it handed out all it had, and reads a block only after its
// caller consumed every record of the one before: so a Read after a block
// means the engine consumed it. Only then is the block counted as read.
type liveReader struct {
	p       *followPass
	ctx     context.Context
	buf     []byte
	pos     int
	pending *volume
	pendOff int64
	pendBI  *blockInfo
	eof     bool
}

func (r *liveReader) Read(b []byte) (int, error) {
	f := r.p.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, ErrClosed
	}
	if f.pass != r.p {
		return 0, ErrStalePass
	}
	if r.pos < len(r.buf) {
		n := copy(b, r.buf[r.pos:])
		r.pos += n
		return n, nil
	}
	if r.pending != nil {
		f.apply(r.pending, r.pendOff, r.pendBI, true)
		r.pending, r.pendBI = nil, nil
	}
	if r.eof {
		return 0, io.EOF
	}
	for {
		if err := r.ctx.Err(); err != nil {
			return 0, err
		}
		v, off, blk, bi, err := f.nextBlock()
		if err != nil {
			return 0, err
		}
		if blk != nil {
			f.lastData = time.Now()
			r.p.add(v.path, off, off+int64(len(blk)))
			r.pending, r.pendOff, r.pendBI = v, off, bi
			r.buf = blk
			r.pos = copy(b, blk)
			return r.pos, nil
		}
		changed, err := f.rescan()
		if err != nil {
			return 0, err
		}
		if changed {
			continue
		}
		if f.passOver() {
			f.endPass()
			r.eof = true
			return 0, io.EOF
		}
		if err := f.waitUnlocked(r.ctx, f.waitTime()); err != nil {
			return 0, err
		}
		if f.closed {
			return 0, ErrClosed
		}
	}
}

func (r *liveReader) Close() error { return nil }

// waitTime bounds a wait by the next Idle or Stall deadline.
func (f *Follow) waitTime() time.Duration {
	d := f.tick()
	quiet := time.Since(f.lastData)
	var left time.Duration
	switch {
	case len(f.open) == 0:
		left = f.opt.Idle - quiet
	case f.opt.Stall > 0:
		left = f.opt.Stall - quiet
	default:
		return d
	}
	return min(d, max(left, time.Millisecond))
}

// segReader reads byte ranges of files one after the other: the blocks a
// pass handed out, read again.
type segReader struct {
	segs []segment
	fh   *os.File
	path string
}

func (s *segReader) Read(b []byte) (int, error) {
	for len(s.segs) > 0 {
		sg := &s.segs[0]
		if sg.off >= sg.end {
			s.segs = s.segs[1:]
			continue
		}
		if s.fh == nil || s.path != sg.path {
			if s.fh != nil {
				s.fh.Close()
			}
			fh, err := os.Open(sg.path)
			if err != nil {
				s.fh = nil
				return 0, err
			}
			s.fh, s.path = fh, sg.path
		}
		n, err := s.fh.ReadAt(b[:min(int64(len(b)), sg.end-sg.off)], sg.off)
		sg.off += int64(n)
		if n > 0 {
			return n, nil
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the volume shrank since
		}
		return 0, err
	}
	return 0, io.EOF
}

func (s *segReader) Close() error {
	if s.fh != nil {
		return s.fh.Close()
	}
	return nil
}
