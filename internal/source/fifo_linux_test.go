package source

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fifoWriter plays the storage daemon: for each stream it opens and
// closes the FIFO twice (labelling), then writes the stream in chunks and
// closes.
func fifoWriter(t *testing.T, path string, streams ...[]byte) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		openW := func() int {
			deadline := time.Now().Add(5 * time.Second)
			for {
				fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
				if err == nil {
					return fd
				}
				if (err != unix.ENOENT && err != unix.ENXIO) || time.Now().After(deadline) {
					t.Errorf("open for writing: %v", err)
					return -1
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		for _, data := range streams {
			for range 2 {
				fd := openW()
				if fd < 0 {
					return
				}
				time.Sleep(10 * time.Millisecond)
				unix.Close(fd)
				time.Sleep(10 * time.Millisecond)
			}
			fd := openW()
			if fd < 0 {
				return
			}
			unix.SetNonblock(fd, false)
			w := os.NewFile(uintptr(fd), path)
			if err := writeSlowly(w, data, pausePoints(t, data)); err != nil {
				t.Error(err)
			}
			w.Close()
		}
	}()
	return &wg
}

func TestFIFO(t *testing.T) {
	const fx = "bacula-9.6.7-fifo-md5.vol"
	data := fixture(t, fx)
	want := readWhole(t, fx)
	dir := t.TempDir()
	path := filepath.Join(dir, "fifo1")
	copyDir := t.TempDir()
	f := NewFIFO(path, FIFOOptions{CopyDir: copyDir, Logger: testLogger(t), Idle: 5 * time.Second})
	defer f.Close()
	wg := fifoWriter(t, path, data, data)
	ctx := ctxFor(t, 10*time.Second)

	for i := range 2 {
		got, again := pass(t, f, ctx)
		sameItems(t, "pass "+strconv.Itoa(i), got, want)
		sameItems(t, "pass replayed", again(ctx), want)
		if err := f.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()

	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeNamedPipe == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("FIFO %v %v", fi.Mode(), err)
	}
	// The pipe buffer, seen through another read end of the same pipe.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	size, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	want1 := 1 << 20
	if b, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil {
		if m, _ := strconv.Atoi(strings.TrimSpace(string(b))); m > 0 && m < want1 {
			want1 = m
		}
	}
	if size < want1 || f.PipeSize() != size {
		t.Fatalf("pipe size %d (FIFO says %d), want %d", size, f.PipeSize(), want1)
	}

	// Two copies, each the fixture byte for byte; no temporary left.
	ents, _ := os.ReadDir(copyDir)
	if len(ents) != 2 {
		t.Fatalf("copy dir holds %v", ents)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".vol") || strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("copy named %s", e.Name())
		}
		b, _ := os.ReadFile(filepath.Join(copyDir, e.Name()))
		if !bytes.Equal(b, data) {
			t.Fatalf("copy %s: %d bytes differ from the fixture's %d", e.Name(), len(b), len(data))
		}
	}
	t.Log("copies:", ents[0].Name(), ents[1].Name())
}

// Without a copy dir, the spool lives until Commit; JobEnded ends the pass
// while the writer keeps the FIFO open.
func TestFIFOJobEndedSpool(t *testing.T) {
	const fx = "bacula-9.6.7-fifo-md5.vol"
	data := fixture(t, fx)
	spool := t.TempDir()
	path := filepath.Join(t.TempDir(), "fifo")
	f := NewFIFO(path, FIFOOptions{SpoolDir: spool, PipeSize: 64 << 10, Idle: time.Hour, Logger: testLogger(t)})
	defer f.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	release := make(chan struct{})
	go func() {
		defer wg.Done()
		var fd int
		var err error
		for i := 0; i < 1000; i++ {
			if fd, err = unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err != nil {
			t.Error(err)
			return
		}
		unix.SetNonblock(fd, false)
		w := os.NewFile(uintptr(fd), path)
		writeSlowly(w, data, nil)
		f.JobEnded(9)
		<-release // keep the FIFO open
		w.Close()
	}()
	ctx := ctxFor(t, 5*time.Second)
	got, again := pass(t, f, ctx)
	sameItems(t, "pass", got, readWhole(t, fx))
	sameItems(t, "replayed", again(ctx), readWhole(t, fx))
	if ents, _ := os.ReadDir(spool); len(ents) != 1 {
		t.Fatalf("spool dir %v", ents)
	}
	f.Commit()
	if ents, _ := os.ReadDir(spool); len(ents) != 0 {
		t.Fatalf("spool dir after Commit %v", ents)
	}
	close(release)
	wg.Wait()
}
