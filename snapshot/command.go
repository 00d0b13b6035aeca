package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/openbrc/brc/internal/run"
)

// CommandError reports a command that failed: it exited non-zero (Err is
// the *run.ExitError), could not start, or was stopped by its timeout
// (Err wraps ErrTimeout and context.DeadlineExceeded) or by the caller's
// context.
type CommandError struct {
	Cmd      string // the argv, as run.Cmd.String renders it
	ExitCode int    // -1 when it did not exit by itself
	Stderr   string // trimmed
	Err      error
}

// Error renders "snapshot: CMD: exit status N: STDERR", or the cause when
// the command did not exit by itself.
func (e *CommandError) Error() string {
	var ee *run.ExitError
	if errors.As(e.Err, &ee) {
		msg := fmt.Sprintf("snapshot: %s: exit status %d", e.Cmd, e.ExitCode)
		if e.Stderr != "" {
			msg += ": " + e.Stderr
		}
		return msg
	}
	return fmt.Sprintf("snapshot: %s: %v", e.Cmd, e.Err)
}

// Unwrap returns the *run.ExitError or the cause.
func (e *CommandError) Unwrap() error { return e.Err }

// cmds runs the backends' commands, each under its own timeout.
type cmds struct {
	r       run.Runner
	timeout time.Duration
}

// run runs argv and returns its stdout, or a *CommandError.
func (c cmds) run(ctx context.Context, argv ...string) ([]byte, error) {
	// The cause tells our timeout apart from the caller's deadline.
	cctx, cancel := context.WithTimeoutCause(ctx, c.timeout, ErrTimeout)
	defer cancel()
	cmd := run.Cmd{Argv: argv}
	res, err := c.r.Run(cctx, cmd)
	if err == nil {
		return res.Stdout, nil
	}
	ce := &CommandError{Cmd: cmd.String(), ExitCode: -1, Err: err}
	var ee *run.ExitError
	switch {
	case errors.As(err, &ee):
		ce.ExitCode, ce.Stderr = ee.ExitCode, ee.Stderr
	case ctx.Err() == nil && errors.Is(context.Cause(cctx), ErrTimeout):
		ce.Err = fmt.Errorf("%w after %v: %w", ErrTimeout, c.timeout, err)
	}
	return nil, ce
}

// exited reports whether err is a command that ran and exited non-zero:
// the tool's answer, as opposed to a tool that is missing or timed out.
func exited(err error) bool {
	var ee *run.ExitError
	return errors.As(err, &ee)
}

// mount is the file system a path is on, from findmnt.
type mount struct {
	Target  string `json:"target"`
	Source  string `json:"source"`
	FSType  string `json:"fstype"`
	Options string `json:"options"`
}

func (m mount) String() string {
	return fmt.Sprintf("%s file system from %s mounted on %s", m.FSType, m.Source, m.Target)
}

// findmnt returns the mount that root is on. JSON output, because mount
// points and sources may hold any character.
func (c cmds) findmnt(ctx context.Context, root string) (mount, error) {
	out, err := c.run(ctx, "findmnt", "-J", "-o", "TARGET,SOURCE,FSTYPE,OPTIONS", "--target", root)
	if err != nil {
		return mount{}, err
	}
	var v struct {
		Filesystems []mount `json:"filesystems"`
	}
	if err := json.Unmarshal(out, &v); err != nil || len(v.Filesystems) != 1 || v.Filesystems[0].Target == "" {
		return mount{}, fmt.Errorf("%w: findmnt --target %s: %q", ErrToolOutput, root, clip(out))
	}
	return v.Filesystems[0], nil
}

// clip shortens tool output quoted in errors.
func clip(b []byte) string {
	if len(b) > 512 {
		return string(b[:512]) + "..."
	}
	return string(b)
}
