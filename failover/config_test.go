package failover

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	d := Defaults()
	want := Config{
		HealthcheckInterval: 30 * time.Second, HealthcheckTimeout: 10 * time.Second,
		HealthcheckFailures: 3, HealthcheckRecoveries: 3, FailbackHold: 600 * time.Second,
		HookTimeout: 300 * time.Second, HookRetries: 3, HookBackoff: 10 * time.Second,
		HookBackoffMax: 300 * time.Second,
	}
	if d != want {
		t.Errorf("Defaults() = %+v", d)
	}
	if d.Enabled() {
		t.Error("enabled without healthcheck_cmd")
	}
	if err := d.Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	if err := testConfig().Validate(); err != nil {
		t.Errorf("test config invalid: %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		edit func(*Config)
		key  string // expected in the message
	}{
		{func(c *Config) { c.HealthcheckCmd = "" }, "promote_cmd is set but healthcheck_cmd"},
		{func(c *Config) { c.HealthcheckCmd, c.PromoteCmd = "", "" }, "demote_cmd is set but healthcheck_cmd"},
		{func(c *Config) { c.HealthcheckInterval = 0 }, "healthcheck_interval"},
		{func(c *Config) { c.HealthcheckTimeout = -time.Second }, "healthcheck_timeout must be positive"},
		{func(c *Config) { c.HealthcheckTimeout = c.HealthcheckInterval }, "healthcheck_timeout (30s) must be less than healthcheck_interval (30s)"},
		{func(c *Config) { c.HealthcheckFailures = 0 }, "healthcheck_failures"},
		{func(c *Config) { c.HealthcheckRecoveries = 0 }, "healthcheck_recoveries"},
		{func(c *Config) { c.FailbackHold = -1 }, "failback_hold"},
		{func(c *Config) { c.HookTimeout = 0 }, "hook_timeout"},
		{func(c *Config) { c.HookRetries = -1 }, "hook_retries"},
		{func(c *Config) { c.HookBackoff = 0 }, "hook_backoff must be positive"},
		{func(c *Config) { c.HookBackoffMax = time.Second }, "hook_backoff_max"},
	}
	for _, tt := range tests {
		c := testConfig()
		tt.edit(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%s: got %v", tt.key, err)
		}
	}
	// Zero values that are valid: no retries, no hold, role-only hooks.
	c := testConfig()
	c.HookRetries, c.FailbackHold, c.PromoteCmd, c.DemoteCmd = 0, 0, "", ""
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestBackoff(t *testing.T) {
	c := Defaults()
	for attempt, want := range map[int]time.Duration{
		0: 10 * time.Second, 1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second,
		5: 160 * time.Second, 6: 300 * time.Second, 1000: 300 * time.Second,
	} {
		if got := c.Backoff(attempt); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", attempt, got, want)
		}
	}
	c.HookBackoff, c.HookBackoffMax = time.Hour, 1<<63-1
	if got := c.Backoff(100); got != c.HookBackoffMax {
		t.Errorf("huge cap: %v", got)
	}
}
