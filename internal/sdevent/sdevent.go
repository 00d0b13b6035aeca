// Package sdevent carries job and device events from the storage daemon
// plugin (sdplugin, loaded by bacula-sd) to replicad: one JSON object per
// line over a Unix stream socket.
//
// The socket is replicad's: it creates it mode 0660 and checks every
// peer's credentials (SO_PEERCRED) against the users allowed to talk to it
// (root always; by default also the bacula user). Anything else is refused
// and reported. The plugin side never blocks the storage daemon for long:
// Send has a short timeout, and the plugin drops events it cannot deliver
// (the daemon reads the volumes anyway; events only make it react sooner).
//
// One exchange is a request: a job_end event with WantSummary set asks
// replicad for its summary of that job, and the plugin reads one Reply
// line on the same connection (Request). replicad answers when the job is
// replicated on every target, or after WaitSecs with what it has (Done
// false). Listener.ServeRequests gives the handler the means to answer.
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

	// WantSummary (job_end only) asks for a Reply on the same connection:
	// replicad's summary of the job, within WaitSecs seconds.
	WantSummary bool `json:"want_summary,omitempty"`
	WaitSecs    int  `json:"wait_secs,omitempty"`
}

// SummaryType is the type of a Reply.
const SummaryType = "summary"

// Reply is replicad's answer to an event with WantSummary: what the
// targets made of the job.
type Reply struct {
	Type  string `json:"type"` // SummaryType
	JobID uint32 `json:"job_id"`
	Job   string `json:"job,omitempty"`
	// Done: every target is finished with the job (replicated it, or
	// failed it after its retries). false: the wait ran out first, and
	// Targets tell what is known so far.
	Done    bool            `json:"done"`
	Note    string          `json:"note,omitempty"` // e.g. why the job was not seen
	Targets []TargetSummary `json:"targets"`
}

// TargetSummary is one target's part of a Reply.
type TargetSummary struct {
	Name       string `json:"name"`
	Done       bool   `json:"done"` // holds the whole job
	Files      int64  `json:"files"`
	Bytes      int64  `json:"bytes"`
	Skipped    int64  `json:"skipped"`
	Failed     int64  `json:"failed"`      // files not replicated
	JobsBehind int    `json:"jobs_behind"` // jobs the target missed in its last pass
	LagBytes   int64  `json:"lag_bytes"`   // read for it, not yet written
	Error      string `json:"error,omitempty"`
}

// MaxLine bounds one event on the wire, MaxReply one reply.
const (
	MaxLine  = 4096
	MaxReply = 1 << 20
)

// Errors.
var (
	ErrRefused = errors.New("sdevent: peer not allowed")
	ErrTooLong = errors.New("sdevent: event too long")
	ErrNoReply = errors.New("sdevent: the connection closed without a reply")
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

// Request sends ev (normally a job_end with WantSummary) to the socket at
// path and reads replicad's one-line Reply. timeout bounds the whole
// exchange, connecting included.
func Request(path string, ev Event, timeout time.Duration) (Reply, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return Reply{}, err
	}
	if len(b) >= MaxLine {
		return Reply{}, ErrTooLong
	}
	deadline := time.Now().Add(timeout)
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return Reply{}, fmt.Errorf("sdevent: %w", err)
	}
	defer c.Close()
	c.SetDeadline(deadline)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return Reply{}, fmt.Errorf("sdevent: %w", err)
	}
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 4096), MaxReply)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return Reply{}, fmt.Errorf("sdevent: no reply within %s", timeout)
			}
			return Reply{}, fmt.Errorf("sdevent: reading the reply: %w", err)
		}
		return Reply{}, ErrNoReply
	}
	var r Reply
	if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
		return Reply{}, fmt.Errorf("sdevent: bad reply: %w", err)
	}
	if r.Type != SummaryType {
		return Reply{}, fmt.Errorf("sdevent: reply of type %q, want %q", r.Type, SummaryType)
	}
	return r, nil
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
// use. Requests (WantSummary) get no reply: the connection is closed,
// and Request returns ErrNoReply.
func (l *Listener) Serve(ctx context.Context, handle func(Peer, Event), refused func(Peer, error)) error {
	return l.ServeRequests(ctx, func(p Peer, ev Event, _ func(Reply) error) { handle(p, ev) }, refused)
}

// ReplyTimeout bounds the writing of a reply.
const ReplyTimeout = 5 * time.Second

// ServeRequests is Serve with replies: handle gets, with each event, a
// reply function that writes one Reply line on the event's connection
// (the first call only; later ones return an error); call it before
// handle returns. Only events with
// WantSummary expect one: a handler that does not reply closes the
// connection when it returns. handle may block (to wait for what it
// answers) without delaying other connections.
func (l *Listener) ServeRequests(ctx context.Context, handle func(Peer, Event, func(Reply) error), refused func(Peer, error)) error {
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

func (l *Listener) serveConn(c *net.UnixConn, handle func(Peer, Event, func(Reply) error), refused func(Peer, error)) {
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
		replied := false
		handle(p, ev, func(r Reply) error {
			if replied {
				return errors.New("sdevent: already replied")
			}
			replied = true
			if r.Type == "" {
				r.Type = SummaryType
			}
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			c.SetWriteDeadline(time.Now().Add(ReplyTimeout))
			_, err = c.Write(append(b, '\n'))
			return err
		})
		if ev.WantSummary {
			return // one request per connection
		}
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
