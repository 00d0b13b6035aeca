// Package sdevent carries job and device events from the storage daemon
// plugin (sdplugin, loaded by bacula-sd) to replicad: one JSON object per
// line over a Unix stream socket.
//
// The socket is replicad's: it creates it mode 0660 and checks every
// peer's credentials (SO_PEERCRED) against the users allowed to talk to it
// (root always; by default also the bacula user). Anything else is refused
// and reported. The plugin side never blocks the storage daemon: Send has
// a short timeout, and the plugin drops events it cannot deliver (the
// daemon reads the volumes anyway; events only make it react sooner).
package sdevent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"syscall"
	"time"
)

// Event types.
const (
	JobStart    = "job_start"
	JobEnd      = "job_end"
	DeviceOpen  = "device_open"
	DeviceClose = "device_close"
	Loaded      = "plugin_loaded"
	Unloaded    = "plugin_unloaded"
)

// Event is what the plugin tells replicad.
type Event struct {
	Type  string    `json:"type"`
	JobID uint32    `json:"job_id,omitempty"`
	Job   string    `json:"job,omitempty"` // unique job name
	Time  time.Time `json:"time"`
	PID   int       `json:"pid"`            // of the process that loaded the plugin
	API   int       `json:"api,omitempty"`  // SD plugin interface version (12, 13)
	Info  string    `json:"info,omitempty"` // free text (e.g. the loading program)
}

// MaxLine bounds one event on the wire.
const MaxLine = 4096

// Errors.
var (
	ErrRefused = errors.New("sdevent: peer not allowed")
	ErrTooLong = errors.New("sdevent: event too long")
)

// Send delivers ev to the socket at path, giving up after timeout.
func Send(path string, ev Event, timeout time.Duration) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if len(b) >= MaxLine {
		return ErrTooLong
	}
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return fmt.Errorf("sdevent: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("sdevent: %w", err)
	}
	return nil
}

// Peer is who sent an event.
type Peer struct {
	UID, GID uint32
	PID      int32
}

// Listener receives events on replicad's socket.
type Listener struct {
	ln      *net.UnixListener
	path    string
	allowed []uint32
}

// Listen creates the socket at path (replacing a stale one), mode 0660,
// group gid when gid >= 0. Peers whose uid is not 0 or in allowed are
// refused.
func Listen(path string, allowed []uint32, gid int) (*Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("sdevent: %s exists and is not a socket", path)
		}
		os.Remove(path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("sdevent: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("sdevent: %w", err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("sdevent: %w", err)
		}
	}
	return &Listener{ln: ln, path: path, allowed: allowed}, nil
}

// Close stops listening and removes the socket.
func (l *Listener) Close() error { return l.ln.Close() }

// Serve accepts connections until ctx ends, calling handle for each event
// of an allowed peer and refused for each peer turned away (or whose
// event could not be read). handle and refused are called from one
// goroutine at a time per connection; they must be safe for concurrent
// use.
func (l *Listener) Serve(ctx context.Context, handle func(Peer, Event), refused func(Peer, error)) error {
	go func() {
		<-ctx.Done()
		l.ln.Close()
	}()
	for {
		c, err := l.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sdevent: %w", err)
		}
		go l.serveConn(c, handle, refused)
	}
}

func (l *Listener) serveConn(c *net.UnixConn, handle func(Peer, Event), refused func(Peer, error)) {
	defer c.Close()
	p, err := peerOf(c)
	if err != nil {
		refused(p, err)
		return
	}
	if p.UID != 0 && !slices.Contains(l.allowed, p.UID) {
		refused(p, fmt.Errorf("%w: uid %d (pid %d)", ErrRefused, p.UID, p.PID))
		return
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 512), MaxLine)
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			refused(p, fmt.Errorf("sdevent: bad event from uid %d: %w", p.UID, err))
			return
		}
		handle(p, ev)
	}
	if err := sc.Err(); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		refused(p, fmt.Errorf("sdevent: reading from uid %d: %w", p.UID, err))
	}
}

func peerOf(c *net.UnixConn) (Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var cred *syscall.Ucred
	var cerr error
	err = raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return Peer{}, fmt.Errorf("sdevent: SO_PEERCRED: %w", err)
	}
	return Peer{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid}, nil
}
