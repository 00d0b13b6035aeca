package replica

import "sync"

// QueueStat is the backlog of one destination in the pass in progress:
// what the reader has handed it that its target has not consumed yet.
type QueueStat struct {
	Name       string
	MemBytes   int64 // waiting in memory
	SpoolBytes int64 // waiting in the spool file
}

// liveQueues holds the destinations of the pass in progress.
type liveQueues struct {
	mu sync.Mutex
	ds []*dest
}

func (l *liveQueues) set(ds []*dest) {
	l.mu.Lock()
	l.ds = ds
	l.mu.Unlock()
}

// Queues reports the backlog of each destination taking part in the pass
// in progress; nil between passes. It is safe to call while Run runs
// (for metrics and status pages).
func (e *Engine) Queues() []QueueStat {
	e.live.mu.Lock()
	defer e.live.mu.Unlock()
	var out []QueueStat
	for _, d := range e.live.ds {
		d.q.mu.Lock()
		st := QueueStat{Name: d.Name, MemBytes: d.q.memBytes, SpoolBytes: d.q.wOff - d.q.rOff}
		d.q.mu.Unlock()
		out = append(out, st)
	}
	return out
}
