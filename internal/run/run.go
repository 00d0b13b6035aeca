// Package run is the one way openbrc runs external commands (snapshot
// tools, failover hooks, key commands): argv in; stdout, stderr and the
// exit status out; a context for timeouts. Logic that runs commands takes
// a Runner, so tests substitute a Recorder and check the exact argv.
package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Cmd is a command to run.
type Cmd struct {
	Argv  []string // Argv[0] is looked up in PATH when it has no slash
	Env   []string // "KEY=value" added to the current environment
	Stdin []byte   // nil: no input
}

// String renders the argv for logs and errors, quoting words with spaces.
func (c Cmd) String() string {
	q := make([]string, len(c.Argv))
	for i, a := range c.Argv {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$") {
			a = fmt.Sprintf("%q", a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// Result is what a command produced.
type Result struct {
	Stdout, Stderr []byte
	ExitCode       int // -1 when killed by a signal or not started
}

// Runner runs a command to completion. A nil error means exit status 0.
// A command that ran and failed returns its Result and an *ExitError; one
// that could not start or was stopped by ctx returns an error wrapping the
// cause (ctx.Err() when the context ended it).
type Runner interface {
	Run(ctx context.Context, c Cmd) (Result, error)
}

// ExitError reports a command that exited non-zero.
type ExitError struct {
	Cmd      string // Cmd.String()
	ExitCode int
	Stderr   string // trimmed, at most 4 KiB
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("run: %s: exit status %d", e.Cmd, e.ExitCode)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// Exec runs commands with os/exec. When the context ends the process gets
// SIGTERM, then SIGKILL after WaitDelay (default 5s).
type Exec struct {
	WaitDelay time.Duration
}

// Run implements Runner.
func (x Exec) Run(ctx context.Context, c Cmd) (Result, error) {
	if len(c.Argv) == 0 {
		return Result{ExitCode: -1}, errors.New("run: empty command")
	}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = append(os.Environ(), c.Env...)
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = x.WaitDelay
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = 5 * time.Second
	}
	err := cmd.Run()
	res := Result{Stdout: out.Bytes(), Stderr: errb.Bytes(), ExitCode: -1}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("run: %s: %w", c, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return res, &ExitError{Cmd: c.String(), ExitCode: res.ExitCode, Stderr: trim(res.Stderr)}
	}
	if err != nil {
		return res, fmt.Errorf("run: %s: %w", c, err)
	}
	return res, nil
}

func trim(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 4096 {
		s = s[:4096] + "..."
	}
	return s
}

// Recorder is a Runner for tests: it records every command and answers
// from Respond (nil: success with no output). Safe for concurrent use.
type Recorder struct {
	Respond func(c Cmd) (Result, error)

	mu   sync.Mutex
	cmds []Cmd
}

// Run implements Runner.
func (r *Recorder) Run(ctx context.Context, c Cmd) (Result, error) {
	r.mu.Lock()
	r.cmds = append(r.cmds, c)
	r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Result{ExitCode: -1}, err
	}
	if r.Respond == nil {
		return Result{}, nil
	}
	return r.Respond(c)
}

// Cmds returns the commands run so far.
func (r *Recorder) Cmds() []Cmd {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Cmd(nil), r.cmds...)
}

// Argvs returns the commands run so far as strings (Cmd.String), for
// golden comparisons.
func (r *Recorder) Argvs() []string {
	var s []string
	for _, c := range r.Cmds() {
		s = append(s, c.String())
	}
	return s
}
