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

func TestConfigFromEnv(t *testing.T) {
	c := sdplugin.ConfigFromEnv(func(k string) string {
		if k == sdplugin.SocketEnv {
			return " /tmp/x.sock\n"
		}
		return ""
	})
	if c.Socket != "/tmp/x.sock" || c.PID == 0 || c.Program == "" {
		t.Errorf("ConfigFromEnv = %+v", c)
	}
	if c := sdplugin.ConfigFromEnv(func(string) string { return "" }); c.Socket != "" {
		t.Errorf("without %s: Socket %q, want \"\" (the default)", sdplugin.SocketEnv, c.Socket)
	}
}

// fakeHost is one JCR.
type fakeHost struct {
	mu      sync.Mutex
	jobID   int
	job     string
	lookups int
	msgs    []string
	debug   []string
}

func (h *fakeHost) JobID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lookups++
	return h.jobID
}

func (h *fakeHost) Job() string { return h.job }

func (h *fakeHost) Message(msg string) {
	h.mu.Lock()
	h.msgs = append(h.msgs, msg)
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
	mu      sync.Mutex
	paths   []string
	events  []sdevent.Event
	err     error
	block   chan struct{}
	entered chan struct{}
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
	p := sdplugin.New(sdplugin.Config{Socket: "/run/x.sock", Send: s.send, Now: func() time.Time { return t0 }, PID: 77, Program: "bacula-sd"})
	a, err := p.Load(12, 56)
	if err != nil || a.Version != 12 {
		t.Fatalf("Load = %+v, %v", a, err)
	}
	if _, err := p.Load(12, 56); !errors.Is(err, sdplugin.ErrLoaded) {
		t.Errorf("second Load: %v, want ErrLoaded", err)
	}
	id := p.NewInstance()
	if id == 0 {
		t.Fatal("NewInstance returned 0")
	}
	h := &fakeHost{jobID: 42, job: "Job.2026-11-27_10.00.00_03"}
	for _, ev := range []uint32{1, 5, 4, 6, 6, 3, 99, 2} {
		p.HandleEvent(id, ev, h)
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
	if len(h.msgs) != 0 {
		t.Errorf("messages: %q", h.msgs)
	}
	if len(h.debug) != 5 || !strings.HasPrefix(h.debug[0], "100 brc-replica-sd: JobId 42: job_start queued") {
		t.Errorf("debug messages: %q", h.debug)
	}
	if st := p.Stats(); st != (sdplugin.Stats{Queued: 7, Sent: 7}) {
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
	p := sdplugin.New(sdplugin.Config{Send: s.send, Now: clk.Now})
	if _, err := p.Load(12, 56); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "plugin_loaded to fail", func() bool { return p.Stats().Dropped == 1 })
	h := &fakeHost{jobID: 9, job: "J9"}
	id := p.NewInstance()
	p.HandleEvent(id, 1, h) // reports the failed plugin_loaded
	waitUntil(t, "job_start to fail", func() bool { return p.Stats().Dropped == 2 })
	p.HandleEvent(id, 2, h) // within the minute: quiet
	p.Unload()
	msgs := h.messages()
	// 1 or 2: job_start may have failed too by the time of the report.
	if len(msgs) != 1 || !regexp.MustCompile(`: [12] event\(s\) not delivered`).MatchString(msgs[0]) || !strings.Contains(msgs[0], "connection refused") {
		t.Errorf("messages %q", msgs)
	}
	if st := p.Stats(); st.Sent != 0 || st.Dropped != 4 {
		t.Errorf("Stats = %+v, want 4 dropped", st)
	}
}

func TestPluginConcurrentJobs(t *testing.T) {
	s := &fakeSender{}
	p := sdplugin.New(sdplugin.Config{Send: s.send, QueueSize: 1000})
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
