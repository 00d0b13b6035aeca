package failover

import (
	"fmt"
	"time"
)

// Config is the failover part of the daemon's configuration. The comment
// of each field names its configuration key; durations are whole seconds
// in the configuration file (the parser converts them), and are plain
// Durations here so tests can use milliseconds.
type Config struct {
	// HealthcheckCmd (healthcheck_cmd) is the shell command line that
	// checks the primary site; exit status 0 means healthy. Empty disables
	// failover altogether.
	HealthcheckCmd string
	// HealthcheckInterval (healthcheck_interval, default 30 s) is the time
	// between the starts of two checks.
	HealthcheckInterval time.Duration
	// HealthcheckTimeout (healthcheck_timeout, default 10 s) stops a check
	// that runs too long; a check that times out counts as a failure. It
	// must be shorter than the interval, so checks never overlap.
	HealthcheckTimeout time.Duration
	// HealthcheckFailures (healthcheck_failures, default 3) is the number of
	// consecutive failed checks that triggers the promotion.
	HealthcheckFailures int
	// HealthcheckRecoveries (healthcheck_recoveries, default 3) is the
	// number of consecutive passed checks that allows the failback.
	HealthcheckRecoveries int
	// FailbackHold (failback_hold, default 600 s) is the least time between
	// a promotion and the demotion that undoes it. It counts from the
	// successful end of promote_cmd, across daemon restarts.
	FailbackHold time.Duration

	// PromoteCmd (promote_cmd) is the shell command line run to make this
	// site the live one. Empty: the role changes without running anything.
	PromoteCmd string
	// DemoteCmd (demote_cmd) is the shell command line run on failback.
	// Empty: the role changes back without running anything.
	DemoteCmd string
	// HookTimeout (hook_timeout, default 300 s) stops a hook that runs too
	// long; the attempt counts as failed.
	HookTimeout time.Duration
	// HookRetries (hook_retries, default 3) is the number of retries after
	// a failed first attempt, so a hook runs at most HookRetries+1 times
	// before the controller gives up.
	HookRetries int
	// HookBackoff (hook_backoff, default 10 s) is the wait before the first
	// retry; it doubles for each following retry, up to HookBackoffMax
	// (hook_backoff_max, default 300 s).
	HookBackoff    time.Duration
	HookBackoffMax time.Duration
}

// Defaults returns the configuration with every default filled in and no
// command, that is with failover disabled.
func Defaults() Config {
	return Config{
		HealthcheckInterval:   30 * time.Second,
		HealthcheckTimeout:    10 * time.Second,
		HealthcheckFailures:   3,
		HealthcheckRecoveries: 3,
		FailbackHold:          600 * time.Second,
		HookTimeout:           300 * time.Second,
		HookRetries:           3,
		HookBackoff:           10 * time.Second,
		HookBackoffMax:        300 * time.Second,
	}
}

// Enabled reports whether failover is configured at all, that is whether
// there is a health check to run.
func (c Config) Enabled() bool { return c.HealthcheckCmd != "" }

// Validate reports the first inconsistency of c as an error wrapping
// ErrInvalidConfig, naming the configuration keys involved. Timing values
// are checked even when failover is disabled, because a typo there is
// still a typo.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.HealthcheckCmd == "" && c.PromoteCmd != "":
		return bad("promote_cmd is set but healthcheck_cmd is not")
	case c.HealthcheckCmd == "" && c.DemoteCmd != "":
		return bad("demote_cmd is set but healthcheck_cmd is not")
	case c.HealthcheckInterval <= 0:
		return bad("healthcheck_interval must be positive, not %v", c.HealthcheckInterval)
	case c.HealthcheckTimeout <= 0:
		return bad("healthcheck_timeout must be positive, not %v", c.HealthcheckTimeout)
	case c.HealthcheckTimeout >= c.HealthcheckInterval:
		return bad("healthcheck_timeout (%v) must be less than healthcheck_interval (%v)", c.HealthcheckTimeout, c.HealthcheckInterval)
	case c.HealthcheckFailures < 1:
		return bad("healthcheck_failures must be at least 1, not %d", c.HealthcheckFailures)
	case c.HealthcheckRecoveries < 1:
		return bad("healthcheck_recoveries must be at least 1, not %d", c.HealthcheckRecoveries)
	case c.FailbackHold < 0:
		return bad("failback_hold must not be negative, not %v", c.FailbackHold)
	case c.HookTimeout <= 0:
		return bad("hook_timeout must be positive, not %v", c.HookTimeout)
	case c.HookRetries < 0:
		return bad("hook_retries must not be negative, not %d", c.HookRetries)
	case c.HookBackoff <= 0:
		return bad("hook_backoff must be positive, not %v", c.HookBackoff)
	case c.HookBackoffMax < c.HookBackoff:
		return bad("hook_backoff_max (%v) must be at least hook_backoff (%v)", c.HookBackoffMax, c.HookBackoff)
	}
	return nil
}

// Backoff returns the wait after failed attempt number attempt (1 for the
// first attempt): HookBackoff doubled attempt-1 times, capped at
// HookBackoffMax.
func (c Config) Backoff(attempt int) time.Duration {
	d := c.HookBackoff
	for i := 1; i < attempt && d < c.HookBackoffMax; i++ {
		if d > c.HookBackoffMax/2 {
			return c.HookBackoffMax // doubling would pass the cap (or overflow)
		}
		d *= 2
	}
	return min(d, c.HookBackoffMax)
}
