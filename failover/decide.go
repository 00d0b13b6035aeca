package failover

import (
	"fmt"
	"time"
)

// Role is the role of the disaster-recovery site.
type Role string

// The roles. Only these two are persisted; a hook being run or retried is
// not a role of its own (see State.Pending).
const (
	// RoleStandby: the primary site is live (healthy, or not yet failed
	// long enough); this site is its standby and receives replication.
	RoleStandby Role = "standby"
	// RolePromoted: promote_cmd succeeded; the disaster-recovery copy is
	// now the live primary.
	RolePromoted Role = "promoted"
)

// Hook names a transition hook; it is also the BRC_EVENT of the hook.
type Hook string

// The hooks. HookNone is the zero value.
const (
	HookNone    Hook = ""
	HookPromote Hook = "promote"
	HookDemote  Hook = "demote"
)

// State is everything Decide needs to know. The controller keeps one, and
// persists only Role and PromotedAt: the counters and any pending hook are
// deliberately forgotten on restart, so a restarted daemon observes the
// primary afresh before acting again.
type State struct {
	Role       Role
	PromotedAt time.Time // when promote_cmd succeeded; zero when standby

	// Consecutive check results; a result resets the opposite counter.
	Failures  int
	Successes int

	// Pending is the hook being run or waiting for a retry (HookNone:
	// none). There is at most one, so hooks never run concurrently.
	Pending  Hook
	Attempts int       // attempts of Pending started so far
	Running  bool      // an attempt of Pending is running now
	RetryAt  time.Time // when the next attempt of Pending is due

	// GaveUp is the last hook that exhausted its retries. It is not run
	// again until a check with the opposite result clears it (a passed
	// check for promote, a failed one for demote), or the daemon restarts.
	GaveUp Hook
}

// InitialState returns the state of a controller whose persisted role is
// role, promoted at promotedAt (ignored unless role is RolePromoted).
func InitialState(role Role, promotedAt time.Time) State {
	if role != RolePromoted {
		return State{Role: RoleStandby}
	}
	return State{Role: RolePromoted, PromotedAt: promotedAt}
}

// EventKind tells what happened.
type EventKind int

// The events Decide reacts to.
const (
	CheckPassed   EventKind = iota + 1 // healthcheck_cmd exited 0
	CheckFailed                        // healthcheck_cmd failed, timed out or could not start
	HookSucceeded                      // the running attempt of Event.Hook exited 0
	HookFailed                         // the running attempt of Event.Hook failed or timed out
	RetryDue                           // a timer asked by ScheduleRetry fired
)

var eventNames = [...]string{"", "check-passed", "check-failed", "hook-succeeded", "hook-failed", "retry-due"}

// String returns the name of the kind, as used in logs.
func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is an input of Decide.
type Event struct {
	Kind EventKind
	Hook Hook // for HookSucceeded and HookFailed
}

// ActionKind tells what the controller must do.
type ActionKind int

// The actions Decide asks for.
const (
	// RunHook: start attempt Action.Attempt of Action.Hook, with
	// BRC_FAILURES set to Action.Failures. Its end is reported with a
	// HookSucceeded or HookFailed event.
	RunHook ActionKind = iota + 1
	// ScheduleRetry: send a RetryDue event after Action.Delay.
	ScheduleRetry
	// SetRole: the role is now Action.Role (Action.Hook succeeded);
	// persist it and tell the subscribers.
	SetRole
	// Abandon: pending Action.Hook is dropped because the health checks
	// no longer ask for it; report it.
	Abandon
	// GiveUp: Action.Hook failed Action.Attempt times, all it may; report
	// it, an operator is needed.
	GiveUp
)

var actionNames = [...]string{"", "run-hook", "schedule-retry", "set-role", "abandon", "give-up"}

// String returns the name of the kind, as used in logs.
func (k ActionKind) String() string {
	if k > 0 && int(k) < len(actionNames) {
		return actionNames[k]
	}
	return fmt.Sprintf("ActionKind(%d)", int(k))
}

// Action is an output of Decide; the fields a kind does not use are zero.
type Action struct {
	Kind     ActionKind
	Hook     Hook
	Attempt  int           // RunHook, GiveUp
	Failures int           // RunHook: consecutive failures when it was decided
	Delay    time.Duration // ScheduleRetry
	Role     Role          // SetRole
}

// String describes the action for logs and tests.
func (a Action) String() string {
	switch a.Kind {
	case RunHook:
		return fmt.Sprintf("run %s (attempt %d, failures %d)", a.Hook, a.Attempt, a.Failures)
	case ScheduleRetry:
		return fmt.Sprintf("retry %s in %v", a.Hook, a.Delay)
	case SetRole:
		return fmt.Sprintf("role %s", a.Role)
	case Abandon:
		return fmt.Sprintf("abandon %s", a.Hook)
	case GiveUp:
		return fmt.Sprintf("give up %s after %d attempts", a.Hook, a.Attempt)
	}
	return a.Kind.String()
}

// Decide is the whole failover policy, as a pure function: given the
// state, what happened and when, it returns the next state and what to
// do. It never blocks and has no side effects, so every sequence of
// events can be tested without processes or clocks.
//
// The rules:
//
//   - A check result increments its counter and resets the other one, so
//     alternating results never reach a threshold (no flapping).
//   - Standby with HealthcheckFailures consecutive failures and nothing
//     pending: run promote_cmd.
//   - Promoted with HealthcheckRecoveries consecutive passes, FailbackHold
//     elapsed since PromotedAt and nothing pending: run demote_cmd.
//   - A hook that succeeds sets the role. One that fails is retried after
//     Config.Backoff, at most HookRetries times, then given up.
//   - A pending hook that the checks no longer ask for is abandoned rather
//     than retried: a promote once the primary passed HealthcheckRecoveries
//     checks in a row (nothing was promoted, so nothing is demoted), a
//     demote once it failed HealthcheckFailures checks in a row (the site
//     stays promoted). A running attempt is never interrupted for this;
//     it is judged when it ends, and if it succeeded its role stands and
//     the usual rules take it from there.
//
// Events that do not fit the state (a stale timer, the end of a hook that
// is not running) change nothing, so the caller need not filter them.
func Decide(s State, ev Event, now time.Time, cfg Config) (State, []Action) {
	var acts []Action
	switch ev.Kind {
	case CheckPassed:
		s.Successes++
		s.Failures = 0
		if s.GaveUp == HookPromote {
			s.GaveUp = HookNone
		}
	case CheckFailed:
		s.Failures++
		s.Successes = 0
		if s.GaveUp == HookDemote {
			s.GaveUp = HookNone
		}
	case HookSucceeded:
		if !s.Running || ev.Hook != s.Pending {
			return s, nil
		}
		if ev.Hook == HookPromote {
			s.Role, s.PromotedAt = RolePromoted, now
		} else {
			s.Role, s.PromotedAt = RoleStandby, time.Time{}
		}
		s.clearPending()
		s.GaveUp = HookNone
		acts = append(acts, Action{Kind: SetRole, Hook: ev.Hook, Role: s.Role})
	case HookFailed:
		if !s.Running || ev.Hook != s.Pending {
			return s, nil
		}
		s.Running = false
		switch {
		case s.unwanted(cfg):
			// Left pending: the common step below abandons it.
		case s.Attempts > cfg.HookRetries:
			acts = append(acts, Action{Kind: GiveUp, Hook: s.Pending, Attempt: s.Attempts})
			s.GaveUp = s.Pending
			s.clearPending()
		default:
			d := cfg.Backoff(s.Attempts)
			s.RetryAt = now.Add(d)
			acts = append(acts, Action{Kind: ScheduleRetry, Hook: s.Pending, Delay: d})
		}
	case RetryDue:
		// Only a wake-up: whether a retry is due is decided below from
		// RetryAt, which also makes stale timers harmless.
	}
	return s.next(acts, now, cfg)
}

// next appends what follows from s whatever the event was: abandon an
// unwanted pending hook, start a due retry, or start a new hook.
func (s State) next(acts []Action, now time.Time, cfg Config) (State, []Action) {
	if s.Running {
		return s, acts
	}
	if s.Pending != HookNone {
		switch {
		case s.unwanted(cfg):
			acts = append(acts, Action{Kind: Abandon, Hook: s.Pending})
			s.clearPending()
		case !now.Before(s.RetryAt):
			acts = append(acts, s.start(s.Pending))
		}
		return s, acts
	}
	switch {
	case s.Role == RoleStandby && s.Failures >= cfg.HealthcheckFailures && s.GaveUp != HookPromote:
		acts = append(acts, s.start(HookPromote))
	case s.Role == RolePromoted && s.Successes >= cfg.HealthcheckRecoveries && s.GaveUp != HookDemote &&
		!now.Before(s.PromotedAt.Add(cfg.FailbackHold)):
		acts = append(acts, s.start(HookDemote))
	}
	return s, acts
}

// unwanted reports whether the checks no longer ask for the pending hook.
func (s *State) unwanted(cfg Config) bool {
	switch s.Pending {
	case HookPromote:
		return s.Successes >= cfg.HealthcheckRecoveries
	case HookDemote:
		return s.Failures >= cfg.HealthcheckFailures
	}
	return false
}

// start makes h pending and running, and returns the action that runs it.
func (s *State) start(h Hook) Action {
	if s.Pending != h {
		s.Pending, s.Attempts = h, 0
	}
	s.Attempts++
	s.Running = true
	s.RetryAt = time.Time{}
	return Action{Kind: RunHook, Hook: h, Attempt: s.Attempts, Failures: s.Failures}
}

func (s *State) clearPending() {
	s.Pending, s.Attempts, s.Running, s.RetryAt = HookNone, 0, false, time.Time{}
}
