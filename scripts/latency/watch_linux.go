//go:build linux

package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	volMask    = unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_CREATE | unix.IN_MOVED_TO
	targetMask = unix.IN_CREATE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_CLOSE_WRITE | unix.IN_ATTRIB | unix.IN_ONLYDIR
)

type dirWatch struct {
	target int
	rel    string // "" for the root
}

type volFile struct {
	f    *os.File
	size int64
}

type watcher struct {
	fd      int
	out     *bufio.Writer
	volDir  string
	volWD   int
	vols    map[string]*volFile
	roots   []string
	dirs    map[int]dirWatch
	n       int64 // events written
	lost    int   // overflows
	werr    error
	scanned int
}

func watch(args []string) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	volDir := fs.String("vol-dir", "", "the storage daemon's File device directory")
	targets := fs.String("targets", "", "comma-separated target roots (they must exist)")
	out := fs.String("o", "", "events file")
	ready := fs.String("ready", "", "file created once every watch is in place")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *volDir == "" || *targets == "" || *out == "" || fs.NArg() > 0 {
		return errors.New("watch needs -vol-dir, -targets and -o")
	}
	of, err := os.Create(*out)
	if err != nil {
		return err
	}
	defer of.Close()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify_init1: %w", err)
	}
	defer unix.Close(fd)
	w := &watcher{fd: fd, out: bufio.NewWriterSize(of, 1<<20), volDir: *volDir, vols: map[string]*volFile{},
		roots: strings.Split(*targets, ","), dirs: map[int]dirWatch{}}
	defer func() {
		for _, v := range w.vols {
			v.f.Close()
		}
	}()

	// Signals first: a stop that comes while the watches are set up is kept.
	var stop atomic.Bool
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; stop.Store(true) }()

	if w.volWD, err = unix.InotifyAddWatch(fd, w.volDir, volMask); err != nil {
		return fmt.Errorf("watch %s: %w", w.volDir, err)
	}
	now := time.Now().UnixNano()
	ents, err := os.ReadDir(w.volDir)
	if err != nil {
		return err
	}
	for _, de := range ents {
		if de.Type().IsRegular() {
			w.volume(now, de.Name())
		}
	}
	for i := range w.roots {
		if err := w.addTree(i, ""); err != nil {
			return err
		}
	}
	if *ready != "" {
		if err := os.WriteFile(*ready, []byte("ready\n"), 0o644); err != nil {
			return err
		}
	}

	buf := make([]byte, 4<<20)
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	mem, _ := os.Open("/proc/meminfo")
	if mem != nil {
		defer mem.Close()
	}
	var lastMem int64
	for {
		if now := time.Now().UnixNano(); mem != nil && now-lastMem >= 100*int64(time.Millisecond) {
			lastMem = now
			w.meminfo(now, mem)
		}
		stopping := stop.Load()
		n, err := unix.Read(fd, buf)
		if err == unix.EAGAIN || err == unix.EINTR {
			if stopping { // the queue was drained after the stop
				break
			}
			if _, err := unix.Poll(pfd, 100); err != nil && err != unix.EINTR {
				return fmt.Errorf("poll: %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("read inotify: %w", err)
		}
		w.handle(time.Now().UnixNano(), buf[:n])
		if w.werr != nil {
			return w.werr
		}
	}
	if err := w.out.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "latency watch: %d events written, %d directories watched (%d entries found by scans), %d overflows\n",
		w.n, len(w.dirs), w.scanned, w.lost)
	if w.lost > 0 {
		return fmt.Errorf("the inotify queue overflowed %d times: events were lost (raise /proc/sys/fs/inotify/max_queued_events)", w.lost)
	}
	return nil
}

func (w *watcher) emit(e event) {
	if _, err := w.out.WriteString(e.line()); err != nil && w.werr == nil {
		w.werr = err
	}
	w.n++
}

// handle processes the events of one read, all stamped with the time the
// read returned.
func (w *watcher) handle(now int64, b []byte) {
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		nameLen := int(ev.Len)
		name := ""
		if nameLen > 0 {
			raw := b[unix.SizeofInotifyEvent : unix.SizeofInotifyEvent+nameLen]
			if i := indexNUL(raw); i >= 0 {
				raw = raw[:i]
			}
			name = string(raw)
		}
		b = b[unix.SizeofInotifyEvent+nameLen:]
		mask := ev.Mask
		if mask&unix.IN_Q_OVERFLOW != 0 {
			w.lost++
			w.emit(event{kind: 'O', t: now})
			continue
		}
		wd := int(ev.Wd)
		if wd == w.volWD {
			if name != "" {
				w.volume(now, name)
			}
			continue
		}
		d, ok := w.dirs[wd]
		if !ok {
			continue
		}
		if mask&unix.IN_IGNORED != 0 {
			delete(w.dirs, wd)
			continue
		}
		rel := path.Join(d.rel, name)
		isDir := mask&unix.IN_ISDIR != 0
		var op string
		switch {
		case mask&unix.IN_CREATE != 0:
			op = "create"
		case mask&unix.IN_MOVED_FROM != 0:
			op = "moved_from"
		case mask&unix.IN_MOVED_TO != 0:
			op = "moved_to"
		case mask&unix.IN_CLOSE_WRITE != 0:
			op = "close_write"
		case mask&unix.IN_ATTRIB != 0:
			if !isDir {
				continue // files get their metadata before they are renamed into place
			}
			op = "attrib"
		default:
			continue
		}
		w.emit(event{kind: 'E', t: now, target: d.target, op: op, cookie: ev.Cookie, dir: isDir, path: rel})
		if isDir && (op == "create" || op == "moved_to") {
			if err := w.addTree(d.target, rel); err != nil && w.werr == nil {
				w.werr = err
			}
		}
	}
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// meminfo records the dirty and under-writeback page cache: what a syncfs
// has to write.
func (w *watcher) meminfo(now int64, f *os.File) {
	b := make([]byte, 8192)
	n, err := f.ReadAt(b, 0)
	if n == 0 && err != nil {
		return
	}
	e := event{kind: 'M', t: now}
	for _, line := range strings.Split(string(b[:n]), "\n") {
		var v int64
		if _, err := fmt.Sscanf(line, "Dirty: %d kB", &v); err == nil {
			e.dirty = v
		} else if _, err := fmt.Sscanf(line, "Writeback: %d kB", &v); err == nil {
			e.wback = v
		}
	}
	w.emit(e)
}

// volume records the size of volume name if it grew.
func (w *watcher) volume(now int64, name string) {
	v := w.vols[name]
	if v == nil {
		f, err := os.Open(filepath.Join(w.volDir, name))
		if err != nil {
			return // gone already, or not a file we can read
		}
		v = &volFile{f: f}
		w.vols[name] = v
	}
	var st unix.Stat_t
	if unix.Fstat(int(v.f.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return
	}
	if st.Size > v.size {
		v.size = st.Size
		w.emit(event{kind: 'V', t: now, volume: name, size: st.Size})
	}
}

// addTree watches directory rel of target i and everything below it, and
// records what the directories already hold (made before the watch was in
// place) as scan events.
func (w *watcher) addTree(i int, rel string) error {
	dir := filepath.Join(w.roots[i], rel)
	wd, err := unix.InotifyAddWatch(w.fd, dir, targetMask)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil // removed meanwhile
		}
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	w.dirs[wd] = dirWatch{target: i, rel: rel}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	now := time.Now().UnixNano()
	for _, de := range ents {
		p := path.Join(rel, de.Name())
		w.scanned++
		w.emit(event{kind: 'S', t: now, target: i, dir: de.IsDir(), path: p})
		if de.IsDir() {
			if err := w.addTree(i, p); err != nil {
				return err
			}
		}
	}
	return nil
}
