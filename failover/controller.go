package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openbrc/brc/internal/run"
)

// Options configures a Controller.
type Options struct {
	Config   Config
	StateDir string // where StateFileName lives; required

	Runner run.Runner   // nil: run.Exec{}
	Clock  Clock        // nil: SystemClock{}
	Logger *slog.Logger // nil: discard

	// Targets are the configured replication targets (names or paths),
	// passed to hooks in BRC_TARGET, one per line.
	Targets []string
	// LastJobID returns the id of the last job replicated, passed to hooks
	// in BRC_LAST_JOBID. It is called before each hook attempt, from a
	// goroutine of Run. nil: BRC_LAST_JOBID is empty.
	LastJobID func() string
}

// NoticeKind tells what a Notice reports.
type NoticeKind int

// The notices a Controller sends its subscribers.
const (
	NoticeCheck          NoticeKind = iota + 1 // a health check ended (OK, TimedOut, Err, counters)
	NoticeHookStarted                          // an attempt of Hook started
	NoticeHookSucceeded                        // an attempt of Hook exited 0
	NoticeHookFailed                           // an attempt of Hook failed or timed out (Err, TimedOut)
	NoticeRetryScheduled                       // Hook runs again after Delay
	NoticeHookAbandoned                        // pending Hook dropped: the checks no longer ask for it
	NoticeHookGaveUp                           // Hook failed Attempt times and is not retried
	NoticeRoleChanged                          // the role went from OldRole to Role
	NoticeStateError                           // the role could not be persisted (Err)
)

var noticeNames = [...]string{"", "check", "hook-started", "hook-succeeded", "hook-failed",
	"retry-scheduled", "hook-abandoned", "hook-gave-up", "role-changed", "state-error"}

// String returns the name of the kind, as used in logs.
func (k NoticeKind) String() string {
	if k > 0 && int(k) < len(noticeNames) {
		return noticeNames[k]
	}
	return fmt.Sprintf("NoticeKind(%d)", int(k))
}

// Notice reports a check, a hook or a role change to subscribers, for
// instance to pause replication or count metrics. Fields a kind does not
// use are zero.
type Notice struct {
	Kind     NoticeKind
	Time     time.Time
	Role     Role // the role after what is reported
	OldRole  Role // NoticeRoleChanged
	Hook     Hook
	Attempt  int
	OK       bool          // NoticeCheck: the primary passed
	TimedOut bool          // NoticeCheck, NoticeHookFailed
	Err      error         // NoticeCheck, NoticeHookFailed, NoticeStateError
	Delay    time.Duration // NoticeRetryScheduled

	// Consecutive check results after what is reported.
	Failures, Successes int
}

// Controller runs the health checks and the hooks and keeps the role. Its
// methods are safe for concurrent use.
type Controller struct {
	cfg       Config
	dir       string
	runner    run.Runner
	clock     Clock
	log       *slog.Logger
	targets   string
	lastJobID func() string

	mu      sync.Mutex
	state   State
	running bool
	subs    []subscriber
	nextSub int
}

type subscriber struct {
	id int
	fn func(Notice)
}

// New validates the configuration and loads the persisted role from
// opts.StateDir (see LoadState), so Role is right before Run starts. It
// starts nothing.
func New(opts Options) (*Controller, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	role, at, err := LoadState(opts.StateDir)
	if err != nil {
		return nil, err
	}
	c := &Controller{
		cfg:       opts.Config,
		dir:       opts.StateDir,
		runner:    opts.Runner,
		clock:     opts.Clock,
		log:       opts.Logger,
		targets:   strings.Join(opts.Targets, "\n"),
		lastJobID: opts.LastJobID,
		state:     InitialState(role, at),
	}
	if c.runner == nil {
		c.runner = run.Exec{}
	}
	if c.clock == nil {
		c.clock = SystemClock{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Role returns the current role.
func (c *Controller) Role() Role {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.Role
}

// State returns a snapshot of the decision state: role, promotion time,
// counters and pending hook.
func (c *Controller) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Subscribe calls fn with every notice until the returned function is
// called. fn is called from Run's goroutine, in order, and must return
// quickly: the health checks wait for it. It may call Role and State.
func (c *Controller) Subscribe(fn func(Notice)) (unsubscribe func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextSub++
	id := c.nextSub
	c.subs = append(c.subs, subscriber{id, fn})
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, s := range c.subs {
			if s.id == id {
				c.subs = append(c.subs[:i:i], c.subs[i+1:]...)
				return
			}
		}
	}
}

func (c *Controller) notify(n Notice) {
	c.mu.Lock()
	subs := c.subs // never modified in place, see Subscribe
	if n.Role == "" {
		n.Role = c.state.Role
	}
	c.mu.Unlock()
	if n.Time.IsZero() {
		n.Time = c.clock.Now()
	}
	for _, s := range subs {
		s.fn(n)
	}
}

type checkResult struct {
	res      run.Result
	err      error
	timedOut bool
}

type hookResult struct {
	hook     Hook
	attempt  int
	res      run.Result
	err      error
	timedOut bool
}

// Run checks the primary every healthcheck_interval, the first time at
// once, and runs the hooks Decide asks for, until ctx ends. Then it stops
// the running commands (SIGTERM through ctx), waits for them and returns
// nil; a hook that succeeded meanwhile still sets the role. With failover
// disabled (no healthcheck_cmd) it returns nil at once. Run may not be
// called again while it runs (ErrRunning).
func (c *Controller) Run(ctx context.Context) error {
	if !c.cfg.Enabled() {
		c.log.Info("failover: disabled (no healthcheck_cmd)", "role", c.Role())
		return nil
	}
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return ErrRunning
	}
	c.running = true
	// A hook pending from an earlier Run is forgotten, as after a
	// restart: only the role and its time are kept.
	c.state.clearPending()
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l := &loop{
		c:         c,
		ctx:       ctx,
		checkDone: make(chan checkResult, 1),
		hookDone:  make(chan hookResult, 1),
	}
	c.log.Info("failover: started", "role", c.Role(), "interval", c.cfg.HealthcheckInterval)
	l.startCheck()
	for {
		select {
		case <-ctx.Done():
			l.shutdown()
			return nil
		case <-l.checkC:
			if l.checking {
				// The previous check has not returned yet (a runner slow
				// to die after its timeout): never overlap checks.
				l.checkC = c.clock.After(c.cfg.HealthcheckInterval)
				continue
			}
			l.startCheck()
		case r := <-l.checkDone:
			l.checking = false
			l.checkEnded(r)
		case r := <-l.hookDone:
			l.hookRunning = false
			l.hookEnded(r)
		case <-l.retryC:
			l.retryC = nil
			l.handle(Event{Kind: RetryDue})
		}
		l.saveIfDirty()
	}
}

// loop is the state of one Run, owned by its goroutine.
type loop struct {
	c           *Controller
	ctx         context.Context
	checkC      <-chan time.Time // next check
	retryC      <-chan time.Time // next hook retry; a newer one replaces it
	checking    bool
	hookRunning bool
	checkDone   chan checkResult
	hookDone    chan hookResult
	dirty       bool // the role could not be persisted yet
}

func (l *loop) startCheck() {
	c := l.c
	l.checkC = c.clock.After(c.cfg.HealthcheckInterval)
	l.checking = true
	// The timeout timer is made here, not in the goroutine, so that a
	// fake clock knows about it as soon as the loop moves on.
	timeout := c.clock.After(c.cfg.HealthcheckTimeout)
	env := []string{"BRC_ROLE=" + string(c.Role())}
	go func() {
		res, timedOut, err := c.exec(l.ctx, c.cfg.HealthcheckCmd, env, timeout)
		l.checkDone <- checkResult{res, err, timedOut}
	}()
}

func (l *loop) checkEnded(r checkResult) {
	c := l.c
	if r.err != nil && l.ctx.Err() != nil && !r.timedOut {
		return // stopped by shutdown: says nothing about the primary
	}
	ev := Event{Kind: CheckPassed}
	if r.err != nil {
		ev.Kind = CheckFailed
		if r.timedOut {
			r.err = fmt.Errorf("%w: healthcheck_cmd after %v", ErrTimeout, c.cfg.HealthcheckTimeout)
		}
	}
	acts := l.decide(ev)
	s := c.State()
	switch {
	case r.err != nil && s.Role == RoleStandby:
		c.log.Warn("failover: primary check failed", append(output(r.res), "err", r.err,
			"failures", s.Failures, "of", c.cfg.HealthcheckFailures, "role", s.Role)...)
	case r.err != nil:
		// Promoted: the primary being down is the expected news.
		c.log.Info("failover: primary check failed", append(output(r.res), "err", r.err,
			"failures", s.Failures, "role", s.Role)...)
	case s.Successes == 1:
		c.log.Info("failover: primary check passed", append(output(r.res), "role", s.Role)...)
	default:
		c.log.Debug("failover: primary check passed", append(output(r.res), "successes", s.Successes,
			"of", c.cfg.HealthcheckRecoveries, "role", s.Role)...)
	}
	c.notify(Notice{Kind: NoticeCheck, OK: r.err == nil, TimedOut: r.timedOut, Err: r.err,
		Failures: s.Failures, Successes: s.Successes})
	l.do(acts)
}

func (l *loop) hookEnded(r hookResult) {
	c := l.c
	log := c.log.With("hook", r.hook, "attempt", r.attempt)
	if out := output(r.res); len(out) > 0 {
		log.Info("failover: hook output", out...)
	}
	if r.err != nil && l.ctx.Err() != nil && !r.timedOut {
		// Stopped by shutdown: not a failure of the hook. It runs again
		// after a restart if the checks still ask for it.
		log.Warn("failover: hook interrupted by shutdown", "err", r.err)
		return
	}
	s := c.State()
	n := Notice{Kind: NoticeHookSucceeded, Hook: r.hook, Attempt: r.attempt, Failures: s.Failures, Successes: s.Successes}
	ev := Event{Kind: HookSucceeded, Hook: r.hook}
	if r.err != nil {
		if r.timedOut {
			r.err = fmt.Errorf("%w: %s_cmd after %v", ErrTimeout, r.hook, c.cfg.HookTimeout)
		}
		log.Error("failover: hook failed", "err", r.err)
		n.Kind, n.Err, n.TimedOut = NoticeHookFailed, r.err, r.timedOut
		ev.Kind = HookFailed
	} else {
		log.Info("failover: hook succeeded")
	}
	c.notify(n)
	l.handle(ev)
}

// handle feeds ev to Decide and carries out the actions.
func (l *loop) handle(ev Event) { l.do(l.decide(ev)) }

func (l *loop) decide(ev Event) []Action {
	c := l.c
	c.mu.Lock()
	s := c.state // only this goroutine writes state: no lost update
	c.mu.Unlock()
	s, acts := Decide(s, ev, c.clock.Now(), c.cfg)
	c.mu.Lock()
	c.state = s
	c.mu.Unlock()
	return acts
}

func (l *loop) do(acts []Action) {
	c := l.c
	var next []Event // events produced here, handled after these actions
	for _, a := range acts {
		switch a.Kind {
		case RunHook:
			s := c.State()
			n := Notice{Kind: NoticeHookStarted, Hook: a.Hook, Attempt: a.Attempt, Failures: s.Failures, Successes: s.Successes}
			cmd := c.cfg.PromoteCmd
			newRole := RolePromoted
			if a.Hook == HookDemote {
				cmd, newRole = c.cfg.DemoteCmd, RoleStandby
			}
			if cmd == "" {
				c.log.Info("failover: no "+string(a.Hook)+"_cmd configured: changing the role only", "hook", a.Hook)
				next = append(next, Event{Kind: HookSucceeded, Hook: a.Hook})
				continue
			}
			if l.ctx.Err() != nil {
				// Shutting down (a hook that ended meanwhile asked for
				// this one): leave it to the next Run, which starts afresh.
				c.log.Warn("failover: hook not started, shutting down", "hook", a.Hook)
				continue
			}
			c.log.Warn("failover: running hook", "hook", a.Hook, "attempt", a.Attempt, "failures", a.Failures)
			c.notify(n)
			l.startHook(a, cmd, newRole, s.Role)
		case ScheduleRetry:
			l.retryC = c.clock.After(a.Delay)
			c.log.Warn("failover: hook will be retried", "hook", a.Hook, "in", a.Delay)
			c.notify(Notice{Kind: NoticeRetryScheduled, Hook: a.Hook, Attempt: c.State().Attempts + 1, Delay: a.Delay})
		case SetRole:
			s := c.State()
			old := RolePromoted
			if a.Role == RolePromoted {
				old = RoleStandby
			}
			l.dirty = true
			l.saveIfDirty()
			c.log.Warn("failover: role changed", "from", old, "to", a.Role, "hook", a.Hook)
			c.notify(Notice{Kind: NoticeRoleChanged, Role: a.Role, OldRole: old, Hook: a.Hook,
				Failures: s.Failures, Successes: s.Successes})
		case Abandon:
			c.log.Warn("failover: pending hook abandoned, the health checks no longer ask for it", "hook", a.Hook)
			c.notify(Notice{Kind: NoticeHookAbandoned, Hook: a.Hook})
		case GiveUp:
			c.log.Error("failover: hook failed too often, giving up until the checks change or the daemon restarts",
				"hook", a.Hook, "attempts", a.Attempt)
			c.notify(Notice{Kind: NoticeHookGaveUp, Hook: a.Hook, Attempt: a.Attempt})
		}
	}
	for _, ev := range next {
		l.handle(ev)
	}
}

func (l *loop) startHook(a Action, cmd string, newRole, role Role) {
	c := l.c
	l.hookRunning = true
	timeout := c.clock.After(c.cfg.HookTimeout) // made here for fake clocks, see startCheck
	env := []string{
		"BRC_EVENT=" + string(a.Hook),
		"BRC_ROLE=" + string(role),
		"BRC_NEW_ROLE=" + string(newRole),
		"BRC_TARGET=" + c.targets,
		"BRC_FAILURES=" + strconv.Itoa(a.Failures),
		"BRC_ATTEMPT=" + strconv.Itoa(a.Attempt),
	}
	go func() {
		jobID := ""
		if c.lastJobID != nil {
			jobID = c.lastJobID()
		}
		env := append(env, "BRC_LAST_JOBID="+jobID)
		res, timedOut, err := c.exec(l.ctx, cmd, env, timeout)
		l.hookDone <- hookResult{a.Hook, a.Attempt, res, err, timedOut}
	}()
}

// saveIfDirty persists the role if it changed and is not saved yet. A
// failed save is reported and tried again after the next event: the hook
// did run, so the role in memory is the truth meanwhile.
func (l *loop) saveIfDirty() {
	if !l.dirty {
		return
	}
	c := l.c
	s := c.State()
	if err := SaveState(c.dir, s.Role, s.PromotedAt, c.clock.Now()); err != nil {
		c.log.Error("failover: cannot persist the role", "role", s.Role, "err", err)
		c.notify(Notice{Kind: NoticeStateError, Err: err})
		return
	}
	l.dirty = false
}

// shutdown waits for the running commands, which ctx stops, and still
// records a hook that succeeded.
func (l *loop) shutdown() {
	if l.checking {
		<-l.checkDone
		l.checking = false
	}
	if l.hookRunning {
		r := <-l.hookDone
		l.hookRunning = false
		if r.err == nil {
			l.hookEnded(r) // starts no new hook: ctx is done
		}
	}
	l.saveIfDirty()
	l.c.log.Info("failover: stopped", "role", l.c.Role())
}

// exec runs cmdline with /bin/sh -c, stopped when timeout fires. It
// reports whether the timeout stopped it.
func (c *Controller) exec(ctx context.Context, cmdline string, env []string, timeout <-chan time.Time) (run.Result, bool, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	go func() {
		select {
		case <-timeout:
			cancel(ErrTimeout)
		case <-done:
		}
	}()
	res, err := c.runner.Run(ctx, run.Cmd{Argv: []string{"/bin/sh", "-c", cmdline}, Env: env})
	close(done)
	return res, err != nil && errors.Is(context.Cause(ctx), ErrTimeout), err
}

// output returns the non-empty outputs of a command as log attributes.
func output(res run.Result) []any {
	var attrs []any
	if s := trim(res.Stdout); s != "" {
		attrs = append(attrs, "stdout", s)
	}
	if s := trim(res.Stderr); s != "" {
		attrs = append(attrs, "stderr", s)
	}
	return attrs
}

// trim shortens command output for the log.
func trim(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 4096 {
		s = s[:4096] + "..."
	}
	return s
}
