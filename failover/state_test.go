package failover

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStateFile(t *testing.T) {
	dir := t.TempDir()
	role, at, err := LoadState(dir)
	if err != nil || role != RoleStandby || !at.IsZero() {
		t.Fatalf("missing file: %s %v %v", role, at, err)
	}
	promoted := time.Date(2026, 3, 1, 12, 0, 0, 123, time.FixedZone("X", 3600))
	if err := SaveState(dir, RolePromoted, promoted, promoted.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	role, at, err = LoadState(dir)
	if err != nil || role != RolePromoted || !at.Equal(promoted) {
		t.Fatalf("promoted: %s %v %v", role, at, err)
	}
	if err := SaveState(dir, RoleStandby, promoted, promoted); err != nil {
		t.Fatal(err)
	}
	role, at, err = LoadState(dir)
	if err != nil || role != RoleStandby || !at.IsZero() {
		t.Fatalf("standby: %s %v %v", role, at, err)
	}
	// Nothing but the state file is left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != StateFileName {
		t.Errorf("directory holds %v", ents)
	}
	b, _ := os.ReadFile(filepath.Join(dir, StateFileName))
	if !strings.Contains(string(b), `"role": "standby"`) {
		t.Errorf("content %s", b)
	}

	if _, _, err := LoadState(""); !errors.Is(err, ErrNoStateDir) {
		t.Errorf("no dir: %v", err)
	}
	if err := SaveState("", RoleStandby, time.Time{}, time.Time{}); !errors.Is(err, ErrNoStateDir) {
		t.Errorf("no dir: %v", err)
	}
	if err := SaveState(filepath.Join(dir, "missing"), RoleStandby, time.Time{}, time.Time{}); err == nil {
		t.Error("saved in a missing directory")
	}
}

func TestStateFileCorrupt(t *testing.T) {
	for _, content := range []string{
		"",
		"{",
		"not json",
		`{"version":1,"role":"standby"} {}`,
		`{"version":2,"role":"standby"}`,
		`{"version":1,"role":"leader"}`,
		`{"version":1,"role":"promoted"}`,
		`{"version":1,"role":"promoted","promoted_at":"yesterday"}`,
	} {
		dir := t.TempDir()
		name := filepath.Join(dir, StateFileName)
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadState(dir)
		if !errors.Is(err, ErrCorruptState) || !strings.Contains(err.Error(), name) {
			t.Errorf("%q: %v", content, err)
		}
		// New refuses to start on it.
		if _, err := New(Options{Config: testConfig(), StateDir: dir}); !errors.Is(err, ErrCorruptState) {
			t.Errorf("New with %q: %v", content, err)
		}
	}
}
