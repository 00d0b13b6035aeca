package sdplugin

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/openbrc/brc/internal/sdevent"
)

var (
	errQueueFull = errors.New("sdplugin: event queue full")
	errStopped   = errors.New("sdplugin: plugin unloaded")
)

// queue is a bounded event queue drained by one goroutine. push never
// blocks: an event that does not fit is dropped and counted, as is one
// that send fails to deliver.
type queue struct {
	ch   chan sdevent.Event
	send func(sdevent.Event) error
	done chan struct{}

	mu         sync.Mutex
	closed     bool
	queued     uint64
	sent       uint64
	dropped    uint64
	lastErr    error
	untold     uint64 // dropped without a job message of their own
	reported   uint64 // untold at the last report
	lastReport time.Time
}

func newQueue(size int, send func(sdevent.Event) error) *queue {
	q := &queue{ch: make(chan sdevent.Event, size), send: send, done: make(chan struct{})}
	go q.run()
	return q
}

func (q *queue) run() {
	defer close(q.done)
	for ev := range q.ch {
		err := q.send(ev)
		q.mu.Lock()
		if err != nil {
			q.dropped++
			q.untold++
			q.lastErr = err
		} else {
			q.sent++
		}
		q.mu.Unlock()
	}
}

// push queues ev and reports whether it was accepted.
func (q *queue) push(ev sdevent.Event) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		q.dropped++
		q.untold++
		q.lastErr = errStopped
		return false
	}
	select {
	case q.ch <- ev:
		q.queued++
		return true
	default:
		q.dropped++
		q.untold++
		q.lastErr = errQueueFull
		return false
	}
}

// account counts an event sent outside the queue (synchronously): sent,
// or dropped with err. told: the job log already says so, the drop
// report leaves it out.
func (q *queue) account(err error, told bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err == nil {
		q.sent++
		return
	}
	q.dropped++
	if !told {
		q.untold++
		q.lastErr = err
	}
}

// close stops accepting events and waits at most wait for the queued ones
// to be handed to send. It returns whether the queue drained in time.
func (q *queue) close(wait time.Duration) bool {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-q.done:
		return true
	case <-t.C:
		return false
	}
}

// report returns a message about the events dropped since the last
// report, or "" if there are none or the last report is less than every
// ago.
func (q *queue) report(now time.Time, every time.Duration, socket string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.untold == q.reported {
		return ""
	}
	if !q.lastReport.IsZero() && now.Sub(q.lastReport) < every {
		return ""
	}
	n := q.untold - q.reported
	q.reported, q.lastReport = q.untold, now
	return fmt.Sprintf("brc-replica-sd: %d event(s) not delivered to replicad at %s (%d since the plugin was loaded; last error: %v). Backups go on (unless require_replica=yes): replicad still reads the volumes; the events only make it react sooner.\n",
		n, socket, q.dropped, q.lastErr)
}

func (q *queue) stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return Stats{Queued: q.queued, Sent: q.sent, Dropped: q.dropped}
}
