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
	DefaultSocket         = "/run/openbrc/replicad.sock"
	DefaultTimeout        = time.Second
	DefaultRequireTimeout = 2 * time.Second
	DefaultSummaryWait    = 30 * time.Second
	DefaultQueueSize      = 256
	DefaultReportEvery    = time.Minute
	DefaultFlush          = 500 * time.Millisecond
	// SummaryMargin is what the plugin waits for replicad's reply beyond
	// the SummaryWait it asks for (transit, replicad's own timer).
	SummaryMargin = 500 * time.Millisecond
)

// Job message types (M_* of the SD) the plugin issues.
const (
	MError   = 4
	MWarning = 5
	MInfo    = 6
)

// Errors.
var (
	ErrVersion = errors.New("sdplugin: unsupported SD plugin interface version")
	ErrFuncs   = errors.New("sdplugin: bsdFuncs smaller than interface 12's")
	ErrLoaded  = errors.New("sdplugin: already loaded")
	// ErrReplicaRequired is HandleEvent's answer to a DeviceOpen when
	// require_replica is set and replicad cannot be reached: the SD fails
	// the job.
	ErrReplicaRequired = errors.New("sdplugin: require_replica: replicad unreachable")
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
	Socket     string // replicad's socket (DefaultSocket)
	SocketFrom string // where Socket comes from (for messages): a file, SocketEnv or "default"
	ConfFile   string // the configuration file read, if any
	// RequireReplica: a DeviceOpen of a job fails (the SD fails the job)
	// when the device_open event cannot be delivered within
	// RequireTimeout.
	RequireReplica bool
	RequireTimeout time.Duration // DefaultRequireTimeout
	// SummaryWait is how long JobEnd waits for replicad's summary of the
	// job (DefaultSummaryWait; negative: no summary, job_end is queued).
	SummaryWait time.Duration
	Timeout     time.Duration // for one Send (DefaultTimeout)
	QueueSize   int           // events waiting to be sent; more are dropped (DefaultQueueSize)
	ReportEvery time.Duration // at most one drop report per interval (DefaultReportEvery)
	Flush       time.Duration // how long Unload waits for queued events (DefaultFlush)
	// Send delivers one event (sdevent.Send).
	Send func(path string, ev sdevent.Event, timeout time.Duration) error
	// Request sends an event and reads replicad's reply (sdevent.Request).
	Request func(path string, ev sdevent.Event, timeout time.Duration) (sdevent.Reply, error)
	Now     func() time.Time // time.Now
	PID     int              // of the loading process (os.Getpid())
	// Program is the loading program's name, sent in the plugin_loaded
	// event (bacula-sd, bls, bextract, ...).
	Program string
	// Warnings (about the configuration file) go to the job log of the
	// first job, and to the debug output.
	Warnings []string
}

func programName() string {
	if b, err := os.ReadFile("/proc/self/comm"); err == nil {
		return strings.TrimSpace(string(b))
	} else if len(os.Args) > 0 {
		return filepath.Base(os.Args[0])
	}
	return ""
}

func (c Config) withDefaults() Config {
	if c.Socket == "" {
		c.Socket = DefaultSocket
	}
	if c.SocketFrom == "" {
		c.SocketFrom = "configuration"
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.RequireTimeout <= 0 {
		c.RequireTimeout = DefaultRequireTimeout
	}
	if c.SummaryWait == 0 {
		c.SummaryWait = DefaultSummaryWait
	}
	if c.Request == nil {
		c.Request = sdevent.Request
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
	// Message issues a job message of type typ (MInfo, MWarning, MError).
	Message(typ int, msg string)
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

// Decision of RequireDecision.
const (
	DeviceOpenQueue = iota // require_replica=no: queue device_open
	DeviceOpenOK           // delivered: the device opens
	DeviceOpenFail         // not delivered: the job fails
)

// RequireDecision says what a DeviceOpen of a job does: without
// require_replica the event is queued like the others; with it, the
// outcome of the synchronous delivery (sendErr) decides.
func RequireDecision(require bool, sendErr error) int {
	switch {
	case !require:
		return DeviceOpenQueue
	case sendErr != nil:
		return DeviceOpenFail
	}
	return DeviceOpenOK
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
	warned  bool // Config.Warnings were written to a job log
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

// HandleEvent handles SD event id for instance inst and returns nil
// (bRC_OK) or ErrReplicaRequired (bRC_Error: the SD fails the job).
// Events of system JCRs and of the tools (JobId 0) are skipped. For a
// job (JobId > 0):
//
//   - JobStart is sent at once (at most Config.Timeout), and the job log
//     says whether replicad got it (M_INFO) or not (M_WARNING);
//   - DeviceOpen, with RequireReplica, is sent at once (at most
//     Config.RequireTimeout); if it cannot be delivered, the job log says
//     why (M_ERROR) and ErrReplicaRequired is returned;
//   - JobEnd, unless SummaryWait is negative, asks replicad for its
//     summary of the job, waits at most SummaryWait+SummaryMargin for it,
//     and writes it to the job log, one M_INFO line per target;
//   - the other events are queued (they never block); when events were
//     dropped, a job message says so, at most once per ReportEvery.
func (p *Plugin) HandleEvent(inst uintptr, id uint32, h Host) error {
	typ := EventType(id)
	if typ == "" {
		return nil
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
		return nil
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
		return nil
	}
	p.mu.Lock()
	ev := p.event(typ, jobID, job, "")
	warn := !p.warned && len(p.cfg.Warnings) > 0
	p.warned = true
	p.mu.Unlock()
	cfg := p.cfg
	if warn {
		for _, w := range cfg.Warnings {
			h.Message(MWarning, "openbrc: configuration: "+w+"\n")
			h.Debug(10, "brc-replica-sd: configuration: "+w+"\n")
		}
	}
	var rc error
	switch {
	case id == EventJobStart:
		err := cfg.Send(cfg.Socket, ev, cfg.Timeout)
		q.account(err, true)
		if err != nil {
			msg := fmt.Sprintf("openbrc: replicad unreachable at %s: %v", cfg.Socket, err)
			if cfg.RequireReplica {
				msg += " (require_replica=yes: the job fails when it opens a device unless replicad is back by then)"
			}
			h.Message(MWarning, msg+"\n")
		} else {
			h.Message(MInfo, fmt.Sprintf("openbrc: replicad notified of job %s\n", jobLabel(jobID, job)))
		}
	case id == EventDeviceOpen && cfg.RequireReplica:
		err := cfg.Send(cfg.Socket, ev, cfg.RequireTimeout)
		q.account(err, true)
		if RequireDecision(true, err) == DeviceOpenFail {
			h.Message(MError, fmt.Sprintf("openbrc: require_replica=yes (%s) and replicad is unreachable at %s: %v; the device is not opened, the job fails\n",
				cfg.ConfFile, cfg.Socket, err))
			rc = ErrReplicaRequired
		} else {
			h.Debug(100, fmt.Sprintf("brc-replica-sd: JobId %d: %s delivered to replicad at %s (require_replica)\n", jobID, typ, cfg.Socket))
		}
	case id == EventJobEnd && cfg.SummaryWait > 0:
		ev.WantSummary = true
		ev.WaitSecs = int((cfg.SummaryWait + time.Second - 1) / time.Second)
		r, err := cfg.Request(cfg.Socket, ev, cfg.SummaryWait+SummaryMargin)
		q.account(err, true)
		if err != nil {
			h.Message(MWarning, fmt.Sprintf("openbrc: no replication summary for job %s from replicad at %s: %v\n", jobLabel(jobID, job), cfg.Socket, err))
		} else {
			for _, l := range FormatSummary(r, cfg.SummaryWait) {
				h.Message(MInfo, l+"\n")
			}
		}
	default:
		if q.push(ev) {
			h.Debug(100, fmt.Sprintf("brc-replica-sd: JobId %d: %s queued for replicad at %s\n", jobID, typ, cfg.Socket))
		}
	}
	if msg := q.report(cfg.Now(), cfg.ReportEvery, cfg.Socket); msg != "" {
		h.Message(MInfo, msg)
	}
	return rc
}

func jobLabel(jobID int, job string) string {
	if job == "" {
		return fmt.Sprintf("JobId %d", jobID)
	}
	return job
}

// FormatSummary turns replicad's reply into job log lines (without
// newlines): one per target, after a first line when replicad was not
// done with the job within wait.
func FormatSummary(r sdevent.Reply, wait time.Duration) []string {
	var lines []string
	name := jobLabel(int(r.JobID), r.Job)
	if !r.Done {
		l := fmt.Sprintf("openbrc: replicad has not finished replicating job %s after %s", name, wait.Round(time.Second))
		if r.Note != "" {
			l += " (" + r.Note + ")"
		}
		lines = append(lines, l+"; so far:")
	} else if r.Note != "" {
		lines = append(lines, "openbrc: job "+name+": "+r.Note)
	}
	if len(r.Targets) == 0 && r.Note == "" {
		lines = append(lines, "openbrc: replicad has no target")
	}
	for _, t := range r.Targets {
		l := fmt.Sprintf("openbrc: %s: %d files, %d bytes, %d skipped, %d failed", t.Name, t.Files, t.Bytes, t.Skipped, t.Failed)
		switch {
		case t.Error != "":
			l += ", not replicated: " + t.Error
		case !t.Done:
			l += ", not replicated yet"
		}
		var behind []string
		switch {
		case t.JobsBehind == 1:
			behind = append(behind, "1 job behind")
		case t.JobsBehind > 1:
			behind = append(behind, fmt.Sprintf("%d jobs behind", t.JobsBehind))
		}
		if t.LagBytes > 0 {
			behind = append(behind, fmt.Sprintf("%d bytes still to write", t.LagBytes))
		}
		switch {
		case len(behind) > 0:
			l += ", " + strings.Join(behind, ", ")
		case t.Done:
			l += ", up to date"
		}
		lines = append(lines, l)
	}
	return lines
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
