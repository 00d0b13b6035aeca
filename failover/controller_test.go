package failover

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openbrc/brc/internal/run"
)

// fakeClock is a Clock that moves only when Advance is called.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(now time.Time) *fakeClock { return &fakeClock{now: now} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- f.now
		return ch
	}
	f.waiters = append(f.waiters, fakeWaiter{f.now.Add(d), ch})
	return ch
}

// Advance moves the clock and fires the timers that are due.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.at.After(f.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- f.now // buffered, and sent once
	}
	f.waiters = kept
}

// harness runs a Controller with a fake clock and a scripted runner.
// Commands are the shell command lines "check", "promote" and "demote".
type harness struct {
	t       *testing.T
	clk     *fakeClock
	rec     *run.Recorder
	c       *Controller
	healthy atomic.Bool
	notices chan Notice
	seen    []Notice // every notice read so far, in order
	cancel  context.CancelFunc
	done    chan error
}

var errExit1 = &run.ExitError{Cmd: "test", ExitCode: 1}

// newHarness makes a Controller; hook answers promote and demote (nil:
// success). runner wraps the recorder when not nil.
func newHarness(t *testing.T, cfg Config, dir string, now time.Time, hook func(c run.Cmd) error, wrap func(run.Runner) run.Runner) *harness {
	t.Helper()
	h := &harness{t: t, clk: newFakeClock(now), notices: make(chan Notice, 10000)}
	h.rec = &run.Recorder{Respond: func(c run.Cmd) (run.Result, error) {
		if c.Argv[2] == "check" {
			if h.healthy.Load() {
				return run.Result{Stdout: []byte("ok\n")}, nil
			}
			return run.Result{ExitCode: 1, Stderr: []byte("down\n")}, errExit1
		}
		if hook != nil {
			if err := hook(c); err != nil {
				return run.Result{ExitCode: 1}, err
			}
		}
		return run.Result{Stdout: []byte(c.Argv[2] + " done\n")}, nil
	}}
	var r run.Runner = h.rec
	if wrap != nil {
		r = wrap(r)
	}
	c, err := New(Options{
		Config: cfg, StateDir: dir, Runner: r, Clock: h.clk,
		Targets:   []string{"/dr/a", "dr b"},
		LastJobID: func() string { return "4711" },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	c.Subscribe(func(n Notice) { h.notices <- n })
	return h
}

// start runs the controller; the first check starts at once.
func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.c.Run(ctx) }()
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Fatal("Run did not return")
	}
}

// wait returns the next notice of kind, skipping (but keeping) others.
func (h *harness) wait(kind NoticeKind) Notice {
	h.t.Helper()
	for {
		select {
		case n := <-h.notices:
			h.seen = append(h.seen, n)
			if n.Kind == kind {
				return n
			}
		case <-time.After(10 * time.Second):
			h.t.Fatalf("no %s notice; seen %v", kind, h.kinds())
		}
	}
}

// drain reads the notices already sent.
func (h *harness) drain() {
	for {
		select {
		case n := <-h.notices:
			h.seen = append(h.seen, n)
		default:
			return
		}
	}
}

func (h *harness) kinds() []string {
	var s []string
	for _, n := range h.seen {
		s = append(s, n.Kind.String())
	}
	return s
}

func (h *harness) count(kind NoticeKind) int {
	n := 0
	for _, x := range h.seen {
		if x.Kind == kind {
			n++
		}
	}
	return n
}

// tick lets one healthcheck_interval pass and waits for its check.
func (h *harness) tick() Notice {
	h.t.Helper()
	h.clk.Advance(h.c.cfg.HealthcheckInterval)
	return h.wait(NoticeCheck)
}

// cmds returns the hook command lines run so far (checks left out).
func (h *harness) hooks() []run.Cmd {
	var hs []run.Cmd
	for _, c := range h.rec.Cmds() {
		if c.Argv[2] != "check" {
			hs = append(hs, c)
		}
	}
	return hs
}

func TestPromoteOnceWithEnv(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, testConfig(), dir, t0, nil, nil)
	if h.c.Role() != RoleStandby {
		t.Fatalf("initial role %s", h.c.Role())
	}
	h.start()
	if n := h.wait(NoticeCheck); n.OK || n.Failures != 1 || n.Role != RoleStandby {
		t.Fatalf("first check %+v", n)
	}
	h.tick()
	if n := h.tick(); n.Failures != 3 {
		t.Fatalf("third check %+v", n)
	}
	if n := h.wait(NoticeHookStarted); n.Hook != HookPromote || n.Attempt != 1 || n.Failures != 3 {
		t.Errorf("started %+v", n)
	}
	h.wait(NoticeHookSucceeded)
	n := h.wait(NoticeRoleChanged)
	if n.OldRole != RoleStandby || n.Role != RolePromoted || n.Hook != HookPromote || !n.Time.Equal(t0.Add(60*time.Second)) {
		t.Errorf("role change %+v", n)
	}
	if h.c.Role() != RolePromoted {
		t.Errorf("Role() = %s", h.c.Role())
	}
	for range 6 {
		h.tick() // still failing: no second promote
	}
	h.drain()

	want := []string{"check", "check", "check", "hook-started", "hook-succeeded", "role-changed",
		"check", "check", "check", "check", "check", "check"}
	if !slices.Equal(h.kinds(), want) {
		t.Errorf("notices %v\nwant %v", h.kinds(), want)
	}
	hooks := h.hooks()
	if len(hooks) != 1 {
		t.Fatalf("hooks run: %v", hooks)
	}
	if got := hooks[0].Argv; !slices.Equal(got, []string{"/bin/sh", "-c", "promote"}) {
		t.Errorf("argv %q", got)
	}
	wantEnv := []string{
		"BRC_EVENT=promote", "BRC_ROLE=standby", "BRC_NEW_ROLE=promoted",
		"BRC_TARGET=/dr/a\ndr b", "BRC_FAILURES=3", "BRC_ATTEMPT=1", "BRC_LAST_JOBID=4711",
	}
	if got := hooks[0].Env; !slices.Equal(got, wantEnv) {
		t.Errorf("env %q\nwant %q", got, wantEnv)
	}
	if env := h.rec.Cmds()[0].Env; !slices.Equal(env, []string{"BRC_ROLE=standby"}) {
		t.Errorf("check env %q", env)
	}
	role, at, err := LoadState(dir)
	if err != nil || role != RolePromoted || !at.Equal(t0.Add(60*time.Second)) {
		t.Errorf("persisted %s %v %v", role, at, err)
	}
}

func TestHookRetryBackoffNoOverlap(t *testing.T) {
	var inflight, maxInflight atomic.Int32
	gate := make(chan error) // each promote attempt waits for its result here
	h := newHarness(t, testConfig(), t.TempDir(), t0, func(c run.Cmd) error {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			m := maxInflight.Load()
			if n <= m || maxInflight.CompareAndSwap(m, n) {
				break
			}
		}
		return <-gate
	}, nil)
	h.start()
	h.wait(NoticeCheck)
	h.tick()
	h.tick()
	h.wait(NoticeHookStarted)
	for range 3 {
		h.tick() // more failures while attempt 1 hangs: nothing new starts
	}
	gate <- errExit1
	if n := h.wait(NoticeHookFailed); n.Attempt != 1 || !errors.Is(n.Err, errExit1) || n.TimedOut {
		t.Errorf("failure %+v", n)
	}
	var delays []time.Duration
	for attempt := 2; attempt <= 4; attempt++ {
		n := h.wait(NoticeRetryScheduled)
		delays = append(delays, n.Delay)
		if n.Attempt != attempt {
			t.Errorf("retry notice %+v", n)
		}
		h.clk.Advance(n.Delay - time.Second)
		h.drain()
		if k := h.count(NoticeHookStarted); k != attempt-1 {
			t.Fatalf("attempt %d started before its backoff (%d starts)", attempt, k)
		}
		h.clk.Advance(time.Second)
		if n := h.wait(NoticeHookStarted); n.Attempt != attempt {
			t.Errorf("started %+v", n)
		}
		gate <- errExit1
		h.wait(NoticeHookFailed)
	}
	if n := h.wait(NoticeHookGaveUp); n.Attempt != 4 || n.Hook != HookPromote {
		t.Errorf("gave up %+v", n)
	}
	for range 5 {
		h.tick() // gave up: failures alone do not restart it
	}
	h.drain()
	if !slices.Equal(delays, []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second}) {
		t.Errorf("backoff %v", delays)
	}
	if m := maxInflight.Load(); m != 1 {
		t.Errorf("%d promote attempts ran at once", m)
	}
	var attempts []string
	for _, c := range h.hooks() {
		attempts = append(attempts, c.Env[5])
	}
	if want := []string{"BRC_ATTEMPT=1", "BRC_ATTEMPT=2", "BRC_ATTEMPT=3", "BRC_ATTEMPT=4"}; !slices.Equal(attempts, want) {
		t.Errorf("attempts %q", attempts)
	}
	if h.c.Role() != RoleStandby || h.count(NoticeHookFailed) != 4 {
		t.Errorf("role %s, %d failures reported", h.c.Role(), h.count(NoticeHookFailed))
	}

	// A pass then healthcheck_failures failures re-arm the promotion.
	h.healthy.Store(true)
	h.tick()
	h.healthy.Store(false)
	h.tick()
	h.tick()
	h.tick()
	if n := h.wait(NoticeHookStarted); n.Attempt != 1 {
		t.Errorf("re-armed %+v", n)
	}
	gate <- nil
	h.wait(NoticeRoleChanged)
}

// blocking is a Runner that passes commands to the recorder and then,
// for the command lines in block, hangs until its context ends, like a
// stuck process. Each blocked command is announced on started.
type blocking struct {
	next    run.Runner
	block   map[string]bool
	started chan string
	// succeed makes a blocked command end with success when its context
	// ends, like a hook that finished just as it was stopped.
	succeed atomic.Bool
}

func (b *blocking) Run(ctx context.Context, c run.Cmd) (run.Result, error) {
	res, err := b.next.Run(ctx, c)
	if !b.block[c.Argv[2]] {
		return res, err
	}
	b.started <- c.Argv[2]
	<-ctx.Done()
	if b.succeed.Load() {
		return run.Result{}, nil
	}
	return run.Result{ExitCode: -1}, ctx.Err()
}

func TestHookTimeout(t *testing.T) {
	b := &blocking{block: map[string]bool{"promote": true}, started: make(chan string, 10)}
	h := newHarness(t, testConfig(), t.TempDir(), t0, nil, func(r run.Runner) run.Runner { b.next = r; return b })
	h.start()
	h.wait(NoticeCheck)
	h.tick()
	h.tick()
	h.wait(NoticeHookStarted)
	<-b.started
	h.clk.Advance(h.c.cfg.HookTimeout - time.Second)
	h.drain()
	if h.count(NoticeHookFailed) != 0 {
		t.Fatal("timed out early")
	}
	h.clk.Advance(time.Second)
	n := h.wait(NoticeHookFailed)
	if !n.TimedOut || !errors.Is(n.Err, ErrTimeout) || !strings.Contains(n.Err.Error(), "promote_cmd after 5m0s") {
		t.Errorf("timeout notice %+v", n)
	}
	if n := h.wait(NoticeRetryScheduled); n.Delay != 10*time.Second || n.Attempt != 2 {
		t.Errorf("retry %+v", n)
	}
	if s := h.c.State(); s.Running || s.Pending != HookPromote || s.Role != RoleStandby {
		t.Errorf("state %+v", s)
	}
}

func TestHealthcheckTimeoutIsFailure(t *testing.T) {
	b := &blocking{block: map[string]bool{"check": true}, started: make(chan string, 10)}
	h := newHarness(t, testConfig(), t.TempDir(), t0, nil, func(r run.Runner) run.Runner { b.next = r; return b })
	h.healthy.Store(true) // it would pass, but never answers
	h.start()
	for i := 1; i <= 3; i++ {
		<-b.started
		h.clk.Advance(h.c.cfg.HealthcheckTimeout)
		n := h.wait(NoticeCheck)
		if n.OK || !n.TimedOut || !errors.Is(n.Err, ErrTimeout) || n.Failures != i {
			t.Fatalf("check %d: %+v", i, n)
		}
		if i < 3 {
			h.clk.Advance(h.c.cfg.HealthcheckInterval - h.c.cfg.HealthcheckTimeout)
		}
	}
	if n := h.wait(NoticeHookStarted); n.Hook != HookPromote || n.Failures != 3 {
		t.Errorf("promote %+v", n)
	}
	h.wait(NoticeRoleChanged)
}

func TestRestartKeepsPromotionAndHold(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, testConfig(), dir, t0, nil, nil)
	h.start()
	h.wait(NoticeCheck)
	h.tick()
	h.tick()
	promotedAt := h.wait(NoticeRoleChanged).Time
	h.stop()

	// The daemon restarts 100 s after the promotion; the primary is back.
	h2 := newHarness(t, testConfig(), dir, promotedAt.Add(100*time.Second), nil, nil)
	if s := h2.c.State(); s.Role != RolePromoted || !s.PromotedAt.Equal(promotedAt) || s.Failures != 0 {
		t.Fatalf("restored state %+v", s)
	}
	h2.healthy.Store(true)
	h2.start()
	h2.wait(NoticeCheck)
	for h2.clk.Now().Before(promotedAt.Add(h2.c.cfg.FailbackHold)) {
		// State is decided before the check's notice is sent.
		if s := h2.c.State(); s.Pending != HookNone || s.Role != RolePromoted {
			t.Fatalf("demoting %v after the promotion, before the hold: %+v", h2.clk.Now().Sub(promotedAt), s)
		}
		h2.tick()
	}
	// The first check at or after failback_hold demotes: 100 s + 17*30 s.
	if n := h2.wait(NoticeHookStarted); n.Hook != HookDemote || n.Time.Sub(promotedAt) != 610*time.Second {
		t.Errorf("started %+v, %v after the promotion", n, n.Time.Sub(promotedAt))
	}
	n := h2.wait(NoticeRoleChanged)
	if n.Role != RoleStandby || n.OldRole != RolePromoted {
		t.Errorf("role change %+v", n)
	}
	hooks := h2.hooks()
	if len(hooks) != 1 || !slices.Contains(hooks[0].Env, "BRC_ROLE=promoted") || !slices.Contains(hooks[0].Env, "BRC_EVENT=demote") {
		t.Errorf("hooks %v", hooks)
	}
	h2.stop()
	if role, at, err := LoadState(dir); err != nil || role != RoleStandby || !at.IsZero() {
		t.Errorf("persisted %s %v %v", role, at, err)
	}
}

func TestRecoveryAbandonsPendingPromote(t *testing.T) {
	cfg := testConfig()
	cfg.HookBackoff, cfg.HookBackoffMax = 5*time.Minute, 10*time.Minute
	h := newHarness(t, cfg, t.TempDir(), t0, func(c run.Cmd) error { return errExit1 }, nil)
	h.start()
	h.wait(NoticeCheck)
	h.tick()
	h.tick()
	h.wait(NoticeHookFailed)
	h.wait(NoticeRetryScheduled) // in 5 minutes
	h.healthy.Store(true)
	h.tick()
	h.tick()
	if n := h.tick(); n.Successes != 3 {
		t.Fatalf("%+v", n)
	}
	h.wait(NoticeHookAbandoned)
	for range 30 {
		h.tick() // well past the retry timer and failback_hold
	}
	h.drain()
	if got := len(h.hooks()); got != 1 {
		t.Errorf("%d promote attempts, want 1", got)
	}
	for _, c := range h.hooks() {
		if c.Argv[2] != "promote" {
			t.Errorf("ran %v", c.Argv)
		}
	}
	if s := h.c.State(); s.Role != RoleStandby || s.Pending != HookNone {
		t.Errorf("state %+v", s)
	}
	if h.count(NoticeRoleChanged) != 0 {
		t.Errorf("notices %v", h.kinds())
	}
}

func TestRoleOnlyHooks(t *testing.T) {
	cfg := testConfig()
	cfg.PromoteCmd, cfg.DemoteCmd, cfg.FailbackHold = "", "", 0
	h := newHarness(t, cfg, t.TempDir(), t0, nil, nil)
	h.start()
	h.wait(NoticeCheck)
	h.tick()
	h.tick()
	h.wait(NoticeRoleChanged)
	h.healthy.Store(true)
	h.tick()
	h.tick()
	h.tick()
	if n := h.wait(NoticeRoleChanged); n.Role != RoleStandby {
		t.Errorf("%+v", n)
	}
	if len(h.hooks()) != 0 || h.count(NoticeHookStarted) != 0 {
		t.Errorf("ran hooks %v", h.hooks())
	}
}

// A hook that succeeds while the daemon stops still changes the role, and
// Run waits for it.
func TestShutdown(t *testing.T) {
	dir := t.TempDir()
	b := &blocking{block: map[string]bool{"promote": true}, started: make(chan string, 10)}
	h := newHarness(t, testConfig(), dir, t0, nil, func(r run.Runner) run.Runner { b.next = r; return b })
	h.start()
	h.wait(NoticeCheck)
	h.tick()
	h.tick()
	<-b.started
	b.succeed.Store(true)
	h.stop()
	if role, _, err := LoadState(dir); role != RolePromoted || err != nil {
		t.Errorf("persisted %s %v", role, err)
	}
	h.drain()
	if h.count(NoticeHookFailed) != 0 || h.count(NoticeRoleChanged) != 1 {
		t.Errorf("notices %v", h.kinds())
	}

	// An interrupted hook is neither a success nor a reported failure.
	dir = t.TempDir()
	b2 := &blocking{block: map[string]bool{"promote": true}, started: make(chan string, 10)}
	h = newHarness(t, testConfig(), dir, t0, nil, func(r run.Runner) run.Runner { b2.next = r; return b2 })
	h.start()
	h.wait(NoticeCheck)
	h.tick()
	h.tick()
	<-b2.started
	h.stop()
	h.drain()
	if h.count(NoticeHookFailed) != 0 || h.count(NoticeRoleChanged) != 0 || h.c.Role() != RoleStandby {
		t.Errorf("notices %v, role %s", h.kinds(), h.c.Role())
	}
	if _, err := os.Stat(filepath.Join(dir, StateFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file: %v", err)
	}
}

func TestStateSaveErrorRetried(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, testConfig(), dir, t0, nil, nil)
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.wait(NoticeCheck)
	h.tick()
	h.tick()
	if n := h.wait(NoticeStateError); n.Err == nil {
		t.Errorf("%+v", n)
	}
	if h.c.Role() != RolePromoted {
		t.Errorf("role %s: the hook ran, the role must follow", h.c.Role())
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	h.tick() // saved after this event
	h.stop()
	if role, _, err := LoadState(dir); role != RolePromoted || err != nil {
		t.Errorf("persisted %s %v", role, err)
	}
}

func TestRunMisuse(t *testing.T) {
	// Disabled: Run returns at once.
	c, err := New(Options{Config: Defaults(), StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); err != nil {
		t.Errorf("disabled Run: %v", err)
	}
	if _, err := New(Options{Config: testConfig()}); !errors.Is(err, ErrNoStateDir) {
		t.Errorf("no state dir: %v", err)
	}
	bad := testConfig()
	bad.HealthcheckFailures = 0
	if _, err := New(Options{Config: bad, StateDir: t.TempDir()}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad config: %v", err)
	}

	// Running twice at once.
	h := newHarness(t, testConfig(), t.TempDir(), t0, nil, nil)
	h.start()
	h.wait(NoticeCheck)
	if err := h.c.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v", err)
	}
	// Unsubscribed functions get nothing more.
	got := make(chan Notice, 100)
	unsub := h.c.Subscribe(func(n Notice) { got <- n })
	h.tick()
	<-got
	unsub()
	unsub() // harmless
	h.tick()
	h.stop()
	if len(got) != 0 {
		t.Errorf("unsubscribed got %d more notices", len(got))
	}
	// Run again after it returned: fine.
	h.start()
	h.wait(NoticeCheck)
}
