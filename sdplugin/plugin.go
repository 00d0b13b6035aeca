package sdplugin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/openbrc/brc/internal/sdevent"
)

// SD plugin interface versions the plugin serves. It answers the version
// the storage daemon offers; any other version is refused.
const (
	APIBacula9  = 12 // Bacula 7.0 - 9.6
	APIBacula11 = 13 // Bacula 11.0 and later
)

// License tokens put in psdInfo.plugin_license. The SD compares the field
// with a fixed list and refuses plugins it does not know; the token is an
// interface value, not a statement of this plugin's license (MIT). See the
// package documentation for why each version gets its token.
const (
	LicenseV12 = "Bacula" // accepted by 9.6 only
	LicenseV13 = "AGPLv3" // the only tokens 11.0+ accepts are "AGPLv3" and "Bacula AGPLv3"
)

// MinFuncsSize is the smallest bsdFuncs the plugin works with: the
// interface-12 layout, of which interface 13 is a prefix-compatible
// extension.
const MinFuncsSize = 56

// SD events (bsdEventType), as passed to handlePluginEvent.
const (
	EventJobStart      = 1
	EventJobEnd        = 2
	EventDeviceInit    = 3
	EventDeviceOpen    = 4
	EventDeviceTryOpen = 5
	EventDeviceClose   = 6
)

// Defaults of Config.
const (
	DefaultSocket      = "/run/openbrc/replicad.sock"
	SocketEnv          = "BRC_PLUGIN_SOCKET" // overrides DefaultSocket, read from the SD's environment
	DefaultTimeout     = time.Second
	DefaultQueueSize   = 256
	DefaultReportEvery = time.Minute
	DefaultFlush       = 500 * time.Millisecond
)

// Errors.
var (
	ErrVersion = errors.New("sdplugin: unsupported SD plugin interface version")
	ErrFuncs   = errors.New("sdplugin: bsdFuncs smaller than interface 12's")
	ErrLoaded  = errors.New("sdplugin: already loaded")
)

// Answer is what the plugin puts in psdInfo after a successful negotiation.
type Answer struct {
	Version uint32 // psdInfo.version: the SD's own
	License string // psdInfo.plugin_license
}

// Negotiate decides whether the plugin can serve an SD that offers
// interface version sdVersion with a bsdFuncs of funcsSize bytes, and what
// it answers. Only 12 and 13 are served.
func Negotiate(sdVersion, funcsSize uint32) (Answer, error) {
	var a Answer
	switch sdVersion {
	case APIBacula9:
		a = Answer{Version: sdVersion, License: LicenseV12}
	case APIBacula11:
		a = Answer{Version: sdVersion, License: LicenseV13}
	default:
		return Answer{}, fmt.Errorf("%w: %d (want %d or %d)", ErrVersion, sdVersion, APIBacula9, APIBacula11)
	}
	if funcsSize < MinFuncsSize {
		return Answer{}, fmt.Errorf("%w: %d bytes", ErrFuncs, funcsSize)
	}
	return a, nil
}

// EventType maps an SD event id to the sdevent type sent to replicad, or
// "" for the events the plugin does not forward (DeviceInit, TryOpen and
// unknown ids).
func EventType(id uint32) string {
	switch id {
	case EventJobStart:
		return sdevent.JobStart
	case EventJobEnd:
		return sdevent.JobEnd
	case EventDeviceOpen:
		return sdevent.DeviceOpen
	case EventDeviceClose:
		return sdevent.DeviceClose
	}
	return ""
}

// Config configures a Plugin. The zero value of every field means its
// default.
type Config struct {
	Socket      string        // replicad's socket (DefaultSocket)
	Timeout     time.Duration // for one Send (DefaultTimeout)
	QueueSize   int           // events waiting to be sent; more are dropped (DefaultQueueSize)
	ReportEvery time.Duration // at most one drop report per interval (DefaultReportEvery)
	Flush       time.Duration // how long Unload waits for queued events (DefaultFlush)
	// Send delivers one event (sdevent.Send).
	Send func(path string, ev sdevent.Event, timeout time.Duration) error
	Now  func() time.Time // time.Now
	PID  int              // of the loading process (os.Getpid())
	// Program is the loading program's name, sent in the plugin_loaded
	// event (bacula-sd, bls, bextract, ...).
	Program string
}

// ConfigFromEnv returns the configuration of the plugin loaded into the
// current process: the socket from SocketEnv (via getenv) or DefaultSocket,
// and the program name.
func ConfigFromEnv(getenv func(string) string) Config {
	c := Config{Socket: strings.TrimSpace(getenv(SocketEnv)), PID: os.Getpid()}
	if b, err := os.ReadFile("/proc/self/comm"); err == nil {
		c.Program = strings.TrimSpace(string(b))
	} else if len(os.Args) > 0 {
		c.Program = filepath.Base(os.Args[0])
	}
	return c
}

func (c Config) withDefaults() Config {
	if c.Socket == "" {
		c.Socket = DefaultSocket
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.ReportEvery <= 0 {
		c.ReportEvery = DefaultReportEvery
	}
	if c.Flush <= 0 {
		c.Flush = DefaultFlush
	}
	if c.Send == nil {
		c.Send = sdevent.Send
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.PID == 0 {
		c.PID = os.Getpid()
	}
	return c
}

// Host is what the storage daemon offers for one plugin instance (one
// JCR) during an event: its getBaculaValue variables and its messages.
type Host interface {
	// JobID is bsdVarJobId; 0 if unknown (system JCRs, the tools).
	JobID() int
	// Job is bsdVarJobName, the unique Job name ("" if unknown).
	Job() string
	// Message issues an informational job message (M_INFO).
	Message(msg string)
	// Debug issues a debug message at level.
	Debug(level int, msg string)
}

// Stats counts the events of a Plugin.
type Stats struct {
	Queued  uint64 // accepted into the queue
	Sent    uint64 // delivered to replicad
	Dropped uint64 // not delivered: queue full, or Send failed
	Skipped uint64 // not sent because they had no JobId (system JCR, tools)
}

// instance is the state of one plugin instance (one JCR).
type instance struct {
	jobID int
	job   string
}

// Plugin is the storage daemon plugin's logic: version negotiation,
// per-JCR instances, event mapping, and a bounded queue drained by one
// goroutine that sends to replicad. Its methods never block on replicad
// and are safe for concurrent use: the SD calls them from its job threads.
type Plugin struct {
	cfg Config

	mu      sync.Mutex
	api     uint32
	q       *queue
	inst    map[uintptr]*instance
	next    uintptr
	skipped uint64
}

// New returns a Plugin; it starts nothing until Load.
func New(cfg Config) *Plugin {
	return &Plugin{cfg: cfg.withDefaults(), inst: map[uintptr]*instance{}}
}

// Load negotiates the interface (see Negotiate). On success it starts the
// sending goroutine and queues a plugin_loaded event; on error nothing is
// started and the SD is expected to unload the plugin.
func (p *Plugin) Load(sdVersion, funcsSize uint32) (Answer, error) {
	a, err := Negotiate(sdVersion, funcsSize)
	if err != nil {
		return a, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.q != nil {
		return Answer{}, ErrLoaded
	}
	p.api = a.Version
	cfg := p.cfg
	p.q = newQueue(cfg.QueueSize, func(ev sdevent.Event) error { return cfg.Send(cfg.Socket, ev, cfg.Timeout) })
	p.q.push(p.event(sdevent.Loaded, 0, "", cfg.Program))
	return a, nil
}

// Unload queues a plugin_unloaded event, stops the queue and waits at most
// Config.Flush for the queued events to be sent. It does nothing if Load
// did not succeed (the SD calls unloadPlugin after refusing a plugin too).
func (p *Plugin) Unload() {
	p.mu.Lock()
	q := p.q
	if q != nil {
		q.push(p.event(sdevent.Unloaded, 0, "", p.cfg.Program))
	}
	p.mu.Unlock()
	if q != nil {
		q.close(p.cfg.Flush)
	}
}

func (p *Plugin) event(typ string, jobID int, job, info string) sdevent.Event {
	return sdevent.Event{Type: typ, JobID: uint32(jobID), Job: job, Time: p.cfg.Now().UTC(),
		PID: p.cfg.PID, API: int(p.api), Info: info}
}

// NewInstance creates the state of a new plugin instance (newPlugin) and
// returns its id, never 0.
func (p *Plugin) NewInstance() uintptr {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	if p.next == 0 {
		p.next++
	}
	p.inst[p.next] = &instance{}
	return p.next
}

// FreeInstance forgets an instance (freePlugin). Unknown ids are ignored.
func (p *Plugin) FreeInstance(id uintptr) {
	p.mu.Lock()
	delete(p.inst, id)
	p.mu.Unlock()
}

// Instances returns the number of live instances.
func (p *Plugin) Instances() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inst)
}

// HandleEvent handles SD event id for instance inst. Forwarded events
// (EventType) of a job (JobId > 0) are queued for replicad; those of
// system JCRs and of the tools (JobId 0) are skipped. When events were
// dropped, a job message says so, at most once per Config.ReportEvery.
// It never blocks on replicad; the SD always gets bRC_OK.
func (p *Plugin) HandleEvent(inst uintptr, id uint32, h Host) {
	typ := EventType(id)
	if typ == "" {
		return
	}
	p.mu.Lock()
	q := p.q
	in := p.inst[inst]
	var jobID int
	var job string
	if in != nil {
		jobID, job = in.jobID, in.job
	}
	p.mu.Unlock()
	if q == nil {
		return
	}
	if jobID <= 0 {
		// getBaculaValue: a JCR's JobId and Job do not change, so one
		// look-up per instance is enough once the JobId is known.
		jobID, job = h.JobID(), h.Job()
		if jobID > 0 && in != nil {
			p.mu.Lock()
			in.jobID, in.job = jobID, job
			p.mu.Unlock()
		}
	}
	if jobID <= 0 {
		p.mu.Lock()
		p.skipped++
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	ev := p.event(typ, jobID, job, "")
	p.mu.Unlock()
	if q.push(ev) {
		h.Debug(100, fmt.Sprintf("brc-replica-sd: JobId %d: %s queued for replicad at %s\n", jobID, typ, p.cfg.Socket))
	}
	if msg := q.report(p.cfg.Now(), p.cfg.ReportEvery, p.cfg.Socket); msg != "" {
		h.Message(msg)
	}
}

// Stats returns the event counters.
func (p *Plugin) Stats() Stats {
	p.mu.Lock()
	q, skipped := p.q, p.skipped
	p.mu.Unlock()
	var s Stats
	if q != nil {
		s = q.stats()
	}
	s.Skipped = skipped
	return s
}
