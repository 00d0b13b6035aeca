package run

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestExec(t *testing.T) {
	ctx := context.Background()
	res, err := Exec{}.Run(ctx, Cmd{Argv: []string{"sh", "-c", "cat; echo out; echo err >&2; echo $BRC_X"}, Env: []string{"BRC_X=42"}, Stdin: []byte("in\n")})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "in\nout\n42\n" || string(res.Stderr) != "err\n" || res.ExitCode != 0 {
		t.Fatalf("got %+v", res)
	}

	res, err = Exec{}.Run(ctx, Cmd{Argv: []string{"sh", "-c", "echo bad >&2; exit 3"}})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.ExitCode != 3 || ee.Stderr != "bad" || res.ExitCode != 3 {
		t.Fatalf("err %v, res %+v", err, res)
	}
	if !strings.Contains(err.Error(), `sh -c "echo bad >&2; exit 3": exit status 3: bad`) {
		t.Errorf("message %q", err)
	}

	if _, err := (Exec{}).Run(ctx, Cmd{Argv: []string{"/nonexistent/brc-tool"}}); err == nil || errors.As(err, &ee) {
		t.Errorf("missing command: %v", err)
	}

	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Exec{WaitDelay: time.Second}.Run(tctx, Cmd{Argv: []string{"sleep", "10"}})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Errorf("timeout: %v after %v", err, time.Since(start))
	}
}

func TestRecorder(t *testing.T) {
	r := &Recorder{Respond: func(c Cmd) (Result, error) {
		if c.Argv[0] == "fail" {
			return Result{ExitCode: 1}, &ExitError{Cmd: c.String(), ExitCode: 1}
		}
		return Result{Stdout: []byte("ok")}, nil
	}}
	ctx := context.Background()
	if res, err := r.Run(ctx, Cmd{Argv: []string{"zfs", "snapshot", "pool/a b@x"}}); err != nil || string(res.Stdout) != "ok" {
		t.Fatal(res, err)
	}
	if _, err := r.Run(ctx, Cmd{Argv: []string{"fail"}}); err == nil {
		t.Fatal("no error")
	}
	got := strings.Join(r.Argvs(), "\n")
	if got != "zfs snapshot \"pool/a b@x\"\nfail" {
		t.Errorf("argvs %q", got)
	}
}
