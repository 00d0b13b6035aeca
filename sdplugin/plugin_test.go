package sdplugin_test

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openbrc/brc/internal/sdevent"
	"github.com/openbrc/brc/sdplugin"
)

func TestNegotiate(t *testing.T) {
	for _, tc := range []struct {
		version, size uint32
		want          sdplugin.Answer
		err           error
	}{
		{12, 56, sdplugin.Answer{Version: 12, License: "Bacula"}, nil},
		{13, 64, sdplugin.Answer{Version: 13, License: "AGPLv3"}, nil},
		{13, 56, sdplugin.Answer{Version: 13, License: "AGPLv3"}, nil},
		{12, 48, sdplugin.Answer{}, sdplugin.ErrFuncs},
		{14, 64, sdplugin.Answer{}, sdplugin.ErrVersion},
		{11, 56, sdplugin.Answer{}, sdplugin.ErrVersion},
		{1, 56, sdplugin.Answer{}, sdplugin.ErrVersion},
		{0, 0, sdplugin.Answer{}, sdplugin.ErrVersion},
	} {
		got, err := sdplugin.Negotiate(tc.version, tc.size)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("Negotiate(%d, %d) = %+v, %v; want %+v, %v", tc.version, tc.size, got, err, tc.want, tc.err)
		}
	}
}

func TestEventType(t *testing.T) {
	want := map[uint32]string{0: "", 1: sdevent.JobStart, 2: sdevent.JobEnd, 3: "", 4: sdevent.DeviceOpen,
		5: "", 6: sdevent.DeviceClose, 7: "", 1 << 31: ""}
	for id, typ := range want {
		if got := sdplugin.EventType(id); got != typ {
			t.Errorf("EventType(%d) = %q, want %q", id, got, typ)
		}
	}
}

// fakeHost is one JCR.
type fakeHost struct {
	mu      sync.Mutex
	jobID   int
	job     string
	lookups int
	msgs    []string
	types   []int
	debug   []string
}

func (h *fakeHost) JobID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lookups++
	return h.jobID
}

func (h *fakeHost) Job() string { return h.job }

func (h *fakeHost) Message(typ int, msg string) {
	h.mu.Lock()
	h.msgs = append(h.msgs, msg)
	h.types = append(h.types, typ)
	h.mu.Unlock()
}

func (h *fakeHost) Debug(level int, msg string) {
	h.mu.Lock()
	h.debug = append(h.debug, fmt.Sprintf("%d %s", level, msg))
	h.mu.Unlock()
}

func (h *fakeHost) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.msgs)
}

// fakeSender records what the plugin sends; err makes it fail, block
// makes it wait until release is closed.
type fakeSender struct {
	mu       sync.Mutex
	paths    []string
	events   []sdevent.Event
	err      error
	block    chan struct{}
	entered  chan struct{}
	timeouts []time.Duration
}

func (s *fakeSender) send(path string, ev sdevent.Event, timeout time.Duration) error {
	if s.entered != nil {
		select {
		case s.entered <- struct{}{}:
		default:
		}
	}
	if s.block != nil {
		<-s.block
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if timeout <= 0 {
		return errors.New("no timeout")
	}
	if s.err != nil {
		return s.err
	}
	s.paths = append(s.paths, path)
	s.events = append(s.events, ev)
	return nil
}

// request is Config.Request: it records the event like send, then
// answers reply (or s.err).
func (s *fakeSender) request(reply sdevent.Reply) func(string, sdevent.Event, time.Duration) (sdevent.Reply, error) {
	return func(path string, ev sdevent.Event, timeout time.Duration) (sdevent.Reply, error) {
		if err := s.send(path, ev, timeout); err != nil {
			return sdevent.Reply{}, err
		}
		s.mu.Lock()
		s.timeouts = append(s.timeouts, timeout)
		s.mu.Unlock()
		return reply, nil
	}
}

func (s *fakeSender) types() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ts []string
	for _, ev := range s.events {
		ts = append(ts, ev.Type)
	}
	return ts
}

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// clock is a settable fake time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestPluginJob(t *testing.T) {
	s := &fakeSender{}
	p := sdplugin.New(sdplugin.Config{Socket: "/run/x.sock", Send: s.send, Now: func() time.Time { return t0 }, PID: 77, Program: "bacula-sd",
		SummaryWait: -1})
	a, err := p.Load(12, 56)
	if err != nil || a.Version != 12 {
		t.Fatalf("Load = %+v, %v", a, err)
	}
	waitUntil(t, "plugin_loaded", func() bool { return p.Stats().Sent == 1 })
	if _, err := p.Load(12, 56); !errors.Is(err, sdplugin.ErrLoaded) {
		t.Errorf("second Load: %v, want ErrLoaded", err)
	}
	id := p.NewInstance()
	if id == 0 {
		t.Fatal("NewInstance returned 0")
	}
	h := &fakeHost{jobID: 42, job: "Job.2026-11-27_10.00.00_03"}
	for _, ev := range []uint32{1, 5, 4, 6, 6, 3, 99, 2} {
		if err := p.HandleEvent(id, ev, h); err != nil {
			t.Errorf("event %d: %v", ev, err)
		}
	}
	p.FreeInstance(id)
	if n := p.Instances(); n != 0 {
		t.Errorf("%d instances after FreeInstance", n)
	}
	p.Unload()

	want := []string{sdevent.Loaded, sdevent.JobStart, sdevent.DeviceOpen, sdevent.DeviceClose, sdevent.DeviceClose, sdevent.JobEnd, sdevent.Unloaded}
	if got := s.types(); !slices.Equal(got, want) {
		t.Fatalf("sent %v, want %v", got, want)
	}
	for i, ev := range s.events {
		if s.paths[i] != "/run/x.sock" || ev.PID != 77 || ev.API != 12 || !ev.Time.Equal(t0) {
			t.Errorf("event %d: %+v to %s", i, ev, s.paths[i])
		}
		job := ev.Type != sdevent.Loaded && ev.Type != sdevent.Unloaded
		if job && (ev.JobID != 42 || ev.Job != h.job || ev.Info != "") {
			t.Errorf("job event %d: %+v", i, ev)
		}
		if !job && (ev.JobID != 0 || ev.Job != "" || ev.Info != "bacula-sd") {
			t.Errorf("plugin event %d: %+v", i, ev)
		}
	}
	if h.lookups != 1 {
		t.Errorf("%d JobId look-ups, want 1 (cached per instance)", h.lookups)
	}
	if !slices.Equal(h.msgs, []string{"openbrc: replicad notified of job Job.2026-11-27_10.00.00_03\n"}) || h.types[0] != sdplugin.MInfo {
		t.Errorf("messages: %q %v", h.msgs, h.types)
	}
	if len(h.debug) != 4 || !strings.HasPrefix(h.debug[0], "100 brc-replica-sd: JobId 42: device_open queued") {
		t.Errorf("debug messages: %q", h.debug)
	}
	if st := p.Stats(); st != (sdplugin.Stats{Queued: 6, Sent: 7}) {
		t.Errorf("Stats = %+v", st)
	}
}

func TestPluginSkipsJobIDZero(t *testing.T) {
	s := &fakeSender{}
	p := sdplugin.New(sdplugin.Config{Send: s.send})
	if _, err := p.Load(13, 64); err != nil {
		t.Fatal(err)
	}
	sys := &fakeHost{jobID: 0, job: "*System*"}
	id := p.NewInstance()
	for _, ev := range []uint32{3, 4, 6, 1, 2} {
		p.HandleEvent(id, ev, sys)
	}
	// A context the plugin never saw (instance id 0), also JobId 0.
	p.HandleEvent(0, 4, &fakeHost{})
	p.Unload()
	if got := s.types(); !slices.Equal(got, []string{sdevent.Loaded, sdevent.Unloaded}) {
		t.Errorf("sent %v, want only plugin_loaded and plugin_unloaded", got)
	}
	if st := p.Stats(); st.Skipped != 5 {
		t.Errorf("Stats = %+v, want 5 skipped", st)
	}
	if sys.lookups != 4 {
		t.Errorf("%d look-ups, want 4 (JobId 0 is not cached)", sys.lookups)
	}
	if s.events[0].API != 13 {
		t.Errorf("API %d, want 13", s.events[0].API)
	}
}

func TestPluginNotLoaded(t *testing.T) {
	s := &fakeSender{}
	p := sdplugin.New(sdplugin.Config{Send: s.send})
	if _, err := p.Load(14, 64); !errors.Is(err, sdplugin.ErrVersion) {
		t.Fatalf("Load(14): %v", err)
	}
	h := &fakeHost{jobID: 5}
	id := p.NewInstance()
	p.HandleEvent(id, 1, h)
	p.FreeInstance(id)
	p.FreeInstance(12345)
	p.Unload() // the SD unloads a refused plugin
	p.Unload()
	if len(s.types()) != 0 || h.lookups != 0 {
		t.Errorf("a refused plugin sent %v, looked up %d times", s.types(), h.lookups)
	}
}

// replicad hangs: the SD's calls still return at once, the queue fills,
// the excess is dropped and reported once a minute; Unload gives up after
// Config.Flush.
func TestPluginNeverBlocks(t *testing.T) {
	s := &fakeSender{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	clk := &clock{now: t0}
	p := sdplugin.New(sdplugin.Config{Send: s.send, Now: clk.Now, QueueSize: 4, Flush: 50 * time.Millisecond, Socket: "/x.sock"})
	if _, err := p.Load(12, 56); err != nil {
		t.Fatal(err)
	}
	<-s.entered // plugin_loaded is being sent, and hangs
	h := &fakeHost{jobID: 7, job: "J"}
	id := p.NewInstance()
	start := time.Now()
	for i := 0; i < 100; i++ {
		p.HandleEvent(id, 4, h)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("100 events took %s with replicad hanging", d)
	}
	st := p.Stats()
	if st.Queued != 5 || st.Dropped != 96 {
		t.Errorf("Stats = %+v, want 5 queued (1 in flight + 4), 96 dropped", st)
	}
	msgs := h.messages()
	if len(msgs) != 1 || !strings.Contains(msgs[0], "1 event(s) not delivered to replicad at /x.sock") ||
		!strings.Contains(msgs[0], "queue full") || !strings.HasSuffix(msgs[0], "\n") {
		t.Fatalf("messages %q, want one report of the first drop", msgs)
	}
	clk.add(59 * time.Second)
	p.HandleEvent(id, 6, h)
	if n := len(h.messages()); n != 1 {
		t.Errorf("%d reports within a minute", n)
	}
	clk.add(time.Second)
	p.HandleEvent(id, 6, h)
	msgs = h.messages()
	if len(msgs) != 2 || !strings.Contains(msgs[1], "97 event(s) not delivered") ||
		!strings.Contains(msgs[1], "(98 since the plugin was loaded") {
		t.Errorf("second report: %q", msgs)
	}
	start = time.Now()
	p.Unload()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Unload took %s with replicad hanging", d)
	}
	close(s.block) // let the goroutine finish
}

func TestPluginSendErrors(t *testing.T) {
	s := &fakeSender{err: errors.New("connection refused")}
	clk := &clock{now: t0}
	p := sdplugin.New(sdplugin.Config{Send: s.send, Request: s.request(sdevent.Reply{}), Now: clk.Now, Socket: "/x.sock"})
	if _, err := p.Load(12, 56); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "plugin_loaded to fail", func() bool { return p.Stats().Dropped == 1 })
	h := &fakeHost{jobID: 9, job: "J9"}
	id := p.NewInstance()
	p.HandleEvent(id, 1, h) // job_start fails (told), and reports the failed plugin_loaded
	p.HandleEvent(id, 4, h) // queued: require_replica is off
	waitUntil(t, "device_open to fail", func() bool { return p.Stats().Dropped == 3 })
	if err := p.HandleEvent(id, 2, h); err != nil { // the summary request fails (told); the report waits a minute
		t.Errorf("JobEnd: %v", err)
	}
	p.Unload()
	msgs := h.messages()
	want := []struct {
		typ int
		re  string
	}{
		{sdplugin.MWarning, `^openbrc: replicad unreachable at /x.sock: connection refused\n$`},
		{sdplugin.MInfo, `^brc-replica-sd: 1 event\(s\) not delivered to replicad at /x.sock .*last error: connection refused`},
		{sdplugin.MWarning, `^openbrc: no replication summary for job J9 from replicad at /x.sock: connection refused\n$`},
	}
	if len(msgs) != len(want) {
		t.Fatalf("messages %q", msgs)
	}
	for i, w := range want {
		if h.types[i] != w.typ || !regexp.MustCompile(w.re).MatchString(msgs[i]) {
			t.Errorf("message %d: %d %q, want %d %s", i, h.types[i], msgs[i], w.typ, w.re)
		}
	}
	if st := p.Stats(); st.Sent != 0 || st.Dropped != 5 {
		t.Errorf("Stats = %+v, want 5 dropped", st)
	}
}

func TestPluginConcurrentJobs(t *testing.T) {
	s := &fakeSender{}
	p := sdplugin.New(sdplugin.Config{Send: s.send, QueueSize: 1000, SummaryWait: -1})
	if _, err := p.Load(12, 56); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for j := 1; j <= 20; j++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := &fakeHost{jobID: j, job: fmt.Sprintf("J%d", j)}
			id := p.NewInstance()
			for _, ev := range []uint32{1, 5, 4, 6, 6, 2} {
				p.HandleEvent(id, ev, h)
			}
			p.FreeInstance(id)
		}()
	}
	wg.Wait()
	p.Unload()
	s.mu.Lock()
	defer s.mu.Unlock()
	perJob := map[uint32][]string{}
	for _, ev := range s.events {
		if ev.JobID != 0 && ev.Job != fmt.Sprintf("J%d", ev.JobID) {
			t.Errorf("%+v: wrong Job", ev)
		}
		perJob[ev.JobID] = append(perJob[ev.JobID], ev.Type)
	}
	want := []string{sdevent.JobStart, sdevent.DeviceOpen, sdevent.DeviceClose, sdevent.DeviceClose, sdevent.JobEnd}
	for j := uint32(1); j <= 20; j++ {
		if !slices.Equal(perJob[j], want) {
			t.Errorf("JobId %d: %v, want %v", j, perJob[j], want)
		}
	}
	if p.Instances() != 0 {
		t.Errorf("%d instances left", p.Instances())
	}
}

func TestRequireDecision(t *testing.T) {
	refused := errors.New("refused")
	for _, tc := range []struct {
		require bool
		err     error
		want    int
	}{
		{false, nil, sdplugin.DeviceOpenQueue},
		{false, refused, sdplugin.DeviceOpenQueue},
		{true, nil, sdplugin.DeviceOpenOK},
		{true, refused, sdplugin.DeviceOpenFail},
	} {
		if got := sdplugin.RequireDecision(tc.require, tc.err); got != tc.want {
			t.Errorf("RequireDecision(%v, %v) = %d, want %d", tc.require, tc.err, got, tc.want)
		}
	}
}

func TestPluginRequireReplica(t *testing.T) {
	s := &fakeSender{err: errors.New("no such file or directory")}
	p := sdplugin.New(sdplugin.Config{Send: s.send, RequireReplica: true, ConfFile: "/etc/x.conf", Socket: "/x.sock", SummaryWait: -1})
	if _, err := p.Load(12, 56); err != nil {
		t.Fatal(err)
	}
	defer p.Unload()
	h := &fakeHost{jobID: 5, job: "J5"}
	id := p.NewInstance()
	if err := p.HandleEvent(id, 1, h); err != nil {
		t.Errorf("JobStart: %v (only DeviceOpen fails)", err)
	}
	if err := p.HandleEvent(id, 4, h); !errors.Is(err, sdplugin.ErrReplicaRequired) {
		t.Errorf("DeviceOpen without replicad: %v, want ErrReplicaRequired", err)
	}
	var msgs []string
	var types []int
	for i, m := range h.messages() { // without the report of plugin_loaded's drop, if already made
		if !strings.Contains(m, "not delivered") {
			msgs, types = append(msgs, m), append(types, h.types[i])
		}
	}
	if len(msgs) != 2 || types[0] != sdplugin.MWarning || !strings.Contains(msgs[0], "require_replica=yes: the job fails") ||
		types[1] != sdplugin.MError || !strings.HasPrefix(msgs[1], "openbrc: require_replica=yes (/etc/x.conf) and replicad is unreachable at /x.sock: no such file") {
		t.Errorf("messages %q %v", msgs, types)
	}
	// The system JCR's DeviceOpen (AlwaysOpen) never fails.
	if err := p.HandleEvent(p.NewInstance(), 4, &fakeHost{}); err != nil {
		t.Errorf("DeviceOpen of JobId 0: %v", err)
	}
	// replicad is back.
	s.mu.Lock()
	s.err = nil
	s.mu.Unlock()
	h2 := &fakeHost{jobID: 6, job: "J6"}
	id2 := p.NewInstance()
	if err := p.HandleEvent(id2, 4, h2); err != nil {
		t.Errorf("DeviceOpen with replicad: %v", err)
	}
	if got := s.types(); !slices.Contains(got, sdevent.DeviceOpen) {
		t.Errorf("sent %v: no device_open", got)
	}
	// The report of the events dropped while replicad was away may land in
	// this job's log or in the first one's, as the first part allows.
	for _, m := range h2.messages() {
		if !strings.Contains(m, "not delivered") {
			t.Errorf("messages with replicad: %q", h2.messages())
			break
		}
	}
}

func TestPluginSummary(t *testing.T) {
	s := &fakeSender{}
	reply := sdevent.Reply{Type: sdevent.SummaryType, JobID: 42, Job: "J42", Done: true, Targets: []sdevent.TargetSummary{
		{Name: "/mnt/dr1", Done: true, Files: 54, Bytes: 350273},
		{Name: "/mnt/dr2", Done: true, Files: 54, Bytes: 350273, Skipped: 3, JobsBehind: 1},
	}}
	p := sdplugin.New(sdplugin.Config{Send: s.send, Request: s.request(reply), SummaryWait: 7 * time.Second})
	if _, err := p.Load(12, 56); err != nil {
		t.Fatal(err)
	}
	h := &fakeHost{jobID: 42, job: "J42"}
	id := p.NewInstance()
	p.HandleEvent(id, 1, h)
	if err := p.HandleEvent(id, 2, h); err != nil {
		t.Fatal(err)
	}
	p.Unload()
	want := []string{
		"openbrc: replicad notified of job J42\n",
		"openbrc: /mnt/dr1: 54 files, 350273 bytes, 0 skipped, 0 failed, up to date\n",
		"openbrc: /mnt/dr2: 54 files, 350273 bytes, 3 skipped, 0 failed, 1 job behind\n",
	}
	if got := h.messages(); !slices.Equal(got, want) {
		t.Errorf("messages\n%q\nwant\n%q", got, want)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var end sdevent.Event
	for _, ev := range s.events {
		if ev.Type == sdevent.JobEnd {
			end = ev
		}
	}
	if !end.WantSummary || end.WaitSecs != 7 || end.JobID != 42 {
		t.Errorf("job_end %+v: want want_summary, wait_secs 7", end)
	}
	if len(s.timeouts) != 1 || s.timeouts[0] != 7*time.Second+sdplugin.SummaryMargin {
		t.Errorf("request timeouts %v", s.timeouts)
	}
}

func TestFormatSummary(t *testing.T) {
	r := sdevent.Reply{JobID: 9, Job: "J9", Done: false, Note: "replication is paused", Targets: []sdevent.TargetSummary{
		{Name: "/a", Done: true, Files: 1, Bytes: 10},
		{Name: "/b", Files: 1, Bytes: 10, Failed: 2, Error: "disk full", JobsBehind: 2, LagBytes: 99},
		{Name: "/c"},
		{Name: "/d", Done: true, Files: 1, LagBytes: 5},
	}}
	want := []string{
		"openbrc: replicad has not finished replicating job J9 after 30s (replication is paused); so far:",
		"openbrc: /a: 1 files, 10 bytes, 0 skipped, 0 failed, up to date",
		"openbrc: /b: 1 files, 10 bytes, 0 skipped, 2 failed, not replicated: disk full, 2 jobs behind, 99 bytes still to write",
		"openbrc: /c: 0 files, 0 bytes, 0 skipped, 0 failed, not replicated yet",
		"openbrc: /d: 1 files, 0 bytes, 0 skipped, 0 failed, 5 bytes still to write",
	}
	if got := sdplugin.FormatSummary(r, 30*time.Second); !slices.Equal(got, want) {
		t.Errorf("FormatSummary\n%q\nwant\n%q", got, want)
	}
	if got := sdplugin.FormatSummary(sdevent.Reply{JobID: 3, Done: true}, time.Second); !slices.Equal(got, []string{"openbrc: replicad has no target"}) {
		t.Errorf("no targets: %q", got)
	}
}
