package snapshot

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openbrc/brc/internal/run"
)

// t0 is the fake clock of every test backend.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return t0 }

// answer is a fake command's result: stdout, or a non-zero exit with stderr.
type answer struct {
	out    string
	code   int
	stderr string
	do     func() // side effect, for the btrfs commands that make or delete trees
}

// fake answers commands by their exact argv string; others succeed silently.
type fake map[string]answer

func (f fake) respond(c run.Cmd) (run.Result, error) {
	a := f[c.String()]
	if a.do != nil {
		a.do()
	}
	if a.code != 0 {
		return run.Result{Stderr: []byte(a.stderr), ExitCode: a.code},
			&run.ExitError{Cmd: c.String(), ExitCode: a.code, Stderr: a.stderr}
	}
	return run.Result{Stdout: []byte(a.out)}, nil
}

// failing returns a responder that answers like f except that the command
// cmd exits with status 3 and stderr "boom".
func (f fake) failing(cmd string) func(run.Cmd) (run.Result, error) {
	return func(c run.Cmd) (run.Result, error) {
		if c.String() == cmd {
			return run.Result{Stderr: []byte("boom\n"), ExitCode: 3}, &run.ExitError{Cmd: cmd, ExitCode: 3, Stderr: "boom"}
		}
		return f.respond(c)
	}
}

// findmntOut is findmnt -J output for one mount, as util-linux 2.38 prints it.
func findmntOut(target, source, fstype, options string) string {
	b, _ := json.MarshalIndent(map[string][]map[string]string{"filesystems": {{
		"target": target, "source": source, "fstype": fstype, "options": options,
	}}}, "", "   ")
	return string(b) + "\n"
}

func findmntCmd(root string) string {
	return "findmnt -J -o TARGET,SOURCE,FSTYPE,OPTIONS --target " + root
}

func newBackend(t *testing.T, cfg Config, r run.Runner) Backend {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = fixedNow
	}
	b, err := New(cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantArgvs(t *testing.T, rec *run.Recorder, want ...string) {
	t.Helper()
	got := rec.Argvs()
	if !slices.Equal(got, want) {
		t.Errorf("commands run:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

// blockRunner records like a Recorder and then blocks until its context
// ends, like a hung tool.
type blockRunner struct{ rec run.Recorder }

func (b *blockRunner) Run(ctx context.Context, c run.Cmd) (run.Result, error) {
	b.rec.Run(context.Background(), c)
	<-ctx.Done()
	return run.Result{ExitCode: -1}, fmt.Errorf("run: %s: %w", c, ctx.Err())
}

// checkEachFailure runs op once to learn its commands, then once per
// command with that command failing, and checks that the error names the
// command, its exit status and its stderr.
func checkEachFailure(t *testing.T, f fake, setup func(t *testing.T, r run.Runner) Backend, op func(Backend) error) {
	t.Helper()
	rec := &run.Recorder{Respond: f.respond}
	if err := op(setup(t, rec)); err != nil {
		t.Fatalf("without failures: %v", err)
	}
	for _, cmd := range rec.Argvs() {
		r := &run.Recorder{Respond: f.failing(cmd)}
		err := op(setup(t, r))
		wantErr(t, err, cmd, "exit status 3", "boom")
	}
}
