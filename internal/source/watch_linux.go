package source

import (
	"os"

	"golang.org/x/sys/unix"
)

// watchDir wakes wake (without blocking) on every change inotify reports
// in dir. stop ends the watch and waits for its goroutine.
func watchDir(dir string, wake chan<- struct{}) (stop func(), err error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	const mask = unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_CREATE | unix.IN_MOVED_TO |
		unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_ATTRIB
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// A non-blocking descriptor: the runtime poller waits for it, and
	// Close wakes the Read below.
	fh := os.NewFile(uintptr(fd), "inotify:"+dir)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 16<<10)
		for {
			if _, err := fh.Read(buf); err != nil {
				return
			}
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}()
	return func() { fh.Close(); <-done }, nil
}
