package failover

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// play feeds Decide a script of space-separated tokens and returns the
// final state and every action, as strings. Tokens: F and P a failed and a
// passed check, +p -p +d -d a promote or demote hook that succeeded or
// failed, R a retry timer, wN N seconds passing. Only wN moves the clock.
func play(t *testing.T, s State, script string, cfg Config) (State, []string) {
	t.Helper()
	now := t0
	var got []string
	for _, tok := range strings.Fields(script) {
		var ev Event
		switch tok {
		case "F":
			ev.Kind = CheckFailed
		case "P":
			ev.Kind = CheckPassed
		case "+p":
			ev = Event{Kind: HookSucceeded, Hook: HookPromote}
		case "-p":
			ev = Event{Kind: HookFailed, Hook: HookPromote}
		case "+d":
			ev = Event{Kind: HookSucceeded, Hook: HookDemote}
		case "-d":
			ev = Event{Kind: HookFailed, Hook: HookDemote}
		case "R":
			ev.Kind = RetryDue
		default:
			n, err := strconv.Atoi(strings.TrimPrefix(tok, "w"))
			if !strings.HasPrefix(tok, "w") || err != nil {
				t.Fatalf("bad token %q", tok)
			}
			now = now.Add(time.Duration(n) * time.Second)
			continue
		}
		var acts []Action
		s, acts = Decide(s, ev, now, cfg)
		for _, a := range acts {
			got = append(got, a.String())
		}
	}
	return s, got
}

func testConfig() Config {
	cfg := Defaults()
	cfg.HealthcheckCmd, cfg.PromoteCmd, cfg.DemoteCmd = "check", "promote", "demote"
	return cfg
}

func TestDecide(t *testing.T) {
	const (
		runP1 = "run promote (attempt 1, failures 3)"
		runD1 = "run demote (attempt 1, failures 0)"
		roleP = "role promoted"
		roleS = "role standby"
	)
	capped := testConfig()
	capped.HookRetries, capped.HookBackoffMax = 10, time.Minute
	once := testConfig()
	once.HealthcheckFailures, once.HealthcheckRecoveries, once.FailbackHold = 1, 1, 0

	tests := []struct {
		name   string
		cfg    *Config // nil: testConfig()
		script string
		want   []string
		role   Role
	}{
		{name: "two failures: nothing", script: "F F", role: RoleStandby},
		{name: "three failures: promote once", script: "F F F", want: []string{runP1}, role: RoleStandby},
		{name: "failures while promote runs: no second run", script: "F F F F F F F +p",
			want: []string{runP1, roleP}, role: RolePromoted},
		{name: "failures while promoted: no second promote", script: "F F F +p F F F F F F w700 F F F",
			want: []string{runP1, roleP}, role: RolePromoted},
		{name: "alternating never promotes", script: strings.Repeat("F P ", 20) + "F F P F F P",
			role: RoleStandby},
		{name: "failure counter resets on a pass", script: "F F P F F P F F F",
			want: []string{runP1}, role: RoleStandby},
		{name: "promoted: recovery before hold waits for the hold",
			script: "F F F +p P P P P P w599 P P w1 P +d",
			want:   []string{runP1, roleP, runD1, roleS}, role: RoleStandby},
		{name: "promoted: hold elapsed but too few passes", script: "F F F +p w3600 P P",
			want: []string{runP1, roleP}, role: RolePromoted},
		{name: "promoted: alternating never demotes",
			script: "F F F +p w600 " + strings.Repeat("P F ", 20) + "P P",
			want:   []string{runP1, roleP}, role: RolePromoted},
		{name: "promoted: passes before the hold count",
			script: "F F F +p P P P w600 P", want: []string{runP1, roleP, runD1}, role: RolePromoted},
		{name: "failed promote: backoff, then gives up",
			script: "F F F -p R w9 R w1 R -p w20 R -p w40 R -p F F F F",
			want: []string{runP1, "retry promote in 10s",
				"run promote (attempt 2, failures 3)", "retry promote in 20s",
				"run promote (attempt 3, failures 3)", "retry promote in 40s",
				"run promote (attempt 4, failures 3)", "give up promote after 4 attempts"},
			role: RoleStandby},
		{name: "gave up: a pass re-arms the promotion",
			script: "F F F -p w10 R -p w20 R -p w40 R -p P F F F",
			want: []string{runP1, "retry promote in 10s",
				"run promote (attempt 2, failures 3)", "retry promote in 20s",
				"run promote (attempt 3, failures 3)", "retry promote in 40s",
				"run promote (attempt 4, failures 3)", "give up promote after 4 attempts",
				runP1},
			role: RoleStandby},
		{name: "backoff capped", cfg: &capped,
			script: "F F F -p w10 R -p w20 R -p w40 R -p w60 R -p w60 R",
			want: []string{runP1, "retry promote in 10s",
				"run promote (attempt 2, failures 3)", "retry promote in 20s",
				"run promote (attempt 3, failures 3)", "retry promote in 40s",
				"run promote (attempt 4, failures 3)", "retry promote in 1m0s",
				"run promote (attempt 5, failures 3)", "retry promote in 1m0s",
				"run promote (attempt 6, failures 3)"},
			role: RoleStandby},
		{name: "primary recovers while promote waits for a retry: abandoned, no demote",
			script: "F F F -p P P P w10 R w3600 P P P",
			want:   []string{runP1, "retry promote in 10s", "abandon promote"}, role: RoleStandby},
		{name: "primary recovers while promote runs and it fails: abandoned",
			script: "F F F P P P -p w10 R",
			want:   []string{runP1, "abandon promote"}, role: RoleStandby},
		{name: "primary recovers while promote runs and it succeeds: promoted, failback after hold",
			script: "F F F P P P +p P w600 P +d",
			want:   []string{runP1, roleP, "run demote (attempt 1, failures 0)", roleS}, role: RoleStandby},
		{name: "short recovery during retries: the retry goes on",
			script: "F F F -p P P F w10 R",
			want:   []string{runP1, "retry promote in 10s", "run promote (attempt 2, failures 1)"}, role: RoleStandby},
		{name: "failed demote: primary fails again, demote abandoned, stays promoted",
			script: "F F F +p w600 P P P -d F F F w10 R",
			want:   []string{runP1, roleP, runD1, "retry demote in 10s", "abandon demote"}, role: RolePromoted},
		{name: "demote succeeds after the primary failed again: promote again",
			script: "F F F +p w600 P P P F F F +d",
			want:   []string{runP1, roleP, runD1, roleS, runP1}, role: RoleStandby},
		{name: "demote gives up; a failure then passes re-arm it",
			script: "F F F +p w600 P P P -d w10 R -d w20 R -d w40 R -d P P P F P P P",
			want: []string{runP1, roleP, runD1, "retry demote in 10s",
				"run demote (attempt 2, failures 0)", "retry demote in 20s",
				"run demote (attempt 3, failures 0)", "retry demote in 40s",
				"run demote (attempt 4, failures 0)", "give up demote after 4 attempts",
				runD1},
			role: RolePromoted},
		{name: "stray events change nothing", script: "+p -p +d -d R R", role: RoleStandby},
		{name: "thresholds of one", cfg: &once, script: "F +p P +d",
			want: []string{"run promote (attempt 1, failures 1)", roleP, runD1, roleS}, role: RoleStandby},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.cfg != nil {
				cfg = *tt.cfg
			}
			s, got := play(t, InitialState(RoleStandby, time.Time{}), tt.script, cfg)
			if !slices.Equal(got, tt.want) {
				t.Errorf("actions\n got %q\nwant %q", got, tt.want)
			}
			if s.Role != tt.role {
				t.Errorf("role %s, want %s", s.Role, tt.role)
			}
		})
	}
}

// A promoted state loaded at start counts the hold from the persisted time.
func TestDecideRestoredPromotion(t *testing.T) {
	s := InitialState(RolePromoted, t0.Add(-590*time.Second))
	s, got := play(t, s, "P P P w9 P w1 P", testConfig())
	want := []string{"run demote (attempt 1, failures 0)"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if !s.Running || s.Pending != HookDemote {
		t.Errorf("state %+v", s)
	}
	if s := InitialState("garbage", t0); s.Role != RoleStandby || !s.PromotedAt.IsZero() {
		t.Errorf("InitialState of an unknown role: %+v", s)
	}
}

// Decide is pure: it does not modify its input, and the same inputs give
// the same outputs.
func TestDecidePure(t *testing.T) {
	cfg := testConfig()
	s := State{Role: RoleStandby, Failures: 2}
	before := s
	s1, a1 := Decide(s, Event{Kind: CheckFailed}, t0, cfg)
	s2, a2 := Decide(s, Event{Kind: CheckFailed}, t0, cfg)
	if s != before || s1 != s2 || !slices.Equal(a1, a2) {
		t.Errorf("not pure: %+v %+v %v %v", s1, s2, a1, a2)
	}
}

func TestKindStrings(t *testing.T) {
	for k, want := range map[interface{ String() string }]string{
		CheckPassed: "check-passed", RetryDue: "retry-due", EventKind(99): "EventKind(99)",
		RunHook: "run-hook", GiveUp: "give-up", ActionKind(0): "ActionKind(0)",
		NoticeCheck: "check", NoticeStateError: "state-error", NoticeKind(42): "NoticeKind(42)",
	} {
		if got := k.String(); got != want {
			t.Errorf("%#v: %q, want %q", k, got, want)
		}
	}
}
