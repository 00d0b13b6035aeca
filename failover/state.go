package failover

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/openbrc/brc/internal/atomicfile"
)

// StateFileName is the name of the state file in the state directory.
const StateFileName = "failover.json"

// stateVersion is the format version of the state file; a file of another
// version is refused rather than guessed at.
const stateVersion = 1

// stateFile is the JSON content of the state file.
type stateFile struct {
	Version    int        `json:"version"`
	Role       Role       `json:"role"`
	PromotedAt *time.Time `json:"promoted_at,omitempty"`
	ChangedAt  time.Time  `json:"changed_at"` // for people reading the file
}

// LoadState reads the role persisted in dir. A missing file means the
// primary is live (RoleStandby, zero time); a file that cannot be
// understood is an error wrapping ErrCorruptState and naming the file,
// never a silent default, because guessing wrong would resume replication
// over a live promoted copy, or promote twice.
func LoadState(dir string) (Role, time.Time, error) {
	if dir == "" {
		return "", time.Time{}, ErrNoStateDir
	}
	name := filepath.Join(dir, StateFileName)
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return RoleStandby, time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("failover: reading state: %w", err)
	}
	corrupt := func(why string, args ...any) error {
		return fmt.Errorf("%w %s: "+why, append([]any{ErrCorruptState, name}, args...)...)
	}
	var f stateFile
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&f); err != nil {
		return "", time.Time{}, corrupt("%v", err)
	}
	if dec.More() {
		return "", time.Time{}, corrupt("data after the JSON object")
	}
	if f.Version != stateVersion {
		return "", time.Time{}, corrupt("version %d, want %d", f.Version, stateVersion)
	}
	switch f.Role {
	case RoleStandby:
		return RoleStandby, time.Time{}, nil
	case RolePromoted:
		if f.PromotedAt == nil || f.PromotedAt.IsZero() {
			return "", time.Time{}, corrupt("promoted without promoted_at")
		}
		return RolePromoted, *f.PromotedAt, nil
	}
	return "", time.Time{}, corrupt("unknown role %q", f.Role)
}

// SaveState persists role and promotedAt in dir, atomically: the content
// goes to a temporary file in dir, is fsynced, renamed over the state
// file, and dir is fsynced, so a crash leaves either the old or the new
// file, never a torn one. now is recorded for the humans reading it.
func SaveState(dir string, role Role, promotedAt, now time.Time) (err error) {
	if dir == "" {
		return ErrNoStateDir
	}
	f := stateFile{Version: stateVersion, Role: role, ChangedAt: now.UTC()}
	if role == RolePromoted {
		t := promotedAt.UTC()
		f.PromotedAt = &t
	}
	b, err := json.MarshalIndent(f, "", "\t")
	if err != nil {
		return fmt.Errorf("failover: saving state: %w", err)
	}
	b = append(b, '\n')

	if err := atomicfile.WriteFile(filepath.Join(dir, StateFileName), b, 0o600); err != nil {
		return fmt.Errorf("failover: saving state in %s: %w", dir, err)
	}
	return nil
}
