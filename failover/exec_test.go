package failover

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openbrc/brc/internal/run"
)

// syncBuffer is a log destination safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// End to end with real shell commands, run.Exec and the real clock: the
// primary is "down" while a file exists.
func TestExecEndToEnd(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	down := filepath.Join(dir, "down")
	promoted := filepath.Join(dir, "promoted")
	demoted := filepath.Join(dir, "demoted")
	if err := os.WriteFile(down, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.HealthcheckCmd = "test ! -e " + shellQuote(down)
	cfg.PromoteCmd = `echo "$BRC_EVENT $BRC_ROLE $BRC_NEW_ROLE $BRC_FAILURES $BRC_ATTEMPT $BRC_LAST_JOBID $BRC_TARGET" > ` +
		shellQuote(promoted) + "; echo promoting; echo careful >&2"
	cfg.DemoteCmd = `echo "$BRC_EVENT $BRC_ROLE $BRC_NEW_ROLE" > ` + shellQuote(demoted)
	cfg.HealthcheckInterval = 100 * time.Millisecond
	cfg.HealthcheckTimeout = 90 * time.Millisecond
	cfg.HealthcheckFailures, cfg.HealthcheckRecoveries = 2, 2
	cfg.FailbackHold = 200 * time.Millisecond
	cfg.HookTimeout = time.Second

	var logs syncBuffer
	c, err := New(Options{
		Config: cfg, StateDir: dir, Runner: run.Exec{WaitDelay: 100 * time.Millisecond},
		Logger:    slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Targets:   []string{"dr1"},
		LastJobID: func() string { return "99" },
	})
	if err != nil {
		t.Fatal(err)
	}
	roles := make(chan Role, 10)
	c.Subscribe(func(n Notice) {
		if n.Kind == NoticeRoleChanged {
			roles <- n.Role
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	deadline := time.After(2 * time.Second)
	waitRole := func(want Role) {
		t.Helper()
		select {
		case r := <-roles:
			if r != want {
				t.Fatalf("role %s, want %s", r, want)
			}
		case <-deadline:
			t.Fatalf("no %s within 2s; log:\n%s", want, logs.String())
		}
	}
	waitRole(RolePromoted)
	if b, _ := os.ReadFile(promoted); string(b) != "promote standby promoted 2 1 99 dr1\n" {
		t.Errorf("promote hook wrote %q", b)
	}
	if r, _, _ := LoadState(dir); r != RolePromoted {
		t.Errorf("persisted %s", r)
	}
	os.Remove(down)
	waitRole(RoleStandby)
	if b, _ := os.ReadFile(demoted); string(b) != "demote promoted standby\n" {
		t.Errorf("demote hook wrote %q", b)
	}
	if r, _, _ := LoadState(dir); r != RoleStandby {
		t.Errorf("persisted %s", r)
	}
	if l := logs.String(); !strings.Contains(l, "stdout=promoting stderr=careful") {
		t.Errorf("hook output not logged:\n%s", l)
	}
}
