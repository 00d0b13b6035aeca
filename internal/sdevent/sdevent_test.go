package sdevent

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestSendServe(t *testing.T) {
	// Not t.TempDir: its parent is 0700, and another user must reach the
	// socket for the credential check to be what refuses it.
	dir, err := os.MkdirTemp("", "sdevent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "replicad.sock")
	l, err := Listen(path, nil, -1)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var got []Event
	var refusals []error
	done := make(chan error)
	go func() {
		done <- l.Serve(ctx, func(p Peer, ev Event) {
			mu.Lock()
			got = append(got, ev)
			mu.Unlock()
		}, func(p Peer, err error) {
			mu.Lock()
			refusals = append(refusals, err)
			mu.Unlock()
		})
	}()
	ev := Event{Type: JobStart, JobID: 42, Job: "Backup.2026-11-27_03.00.00_07", Time: time.Unix(1795000000, 0).UTC(), PID: 7, API: 12}
	if err := Send(path, ev, time.Second); err != nil {
		t.Fatal(err)
	}
	// Another user is turned away (needs root to switch user).
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("setpriv"); err == nil {
			exe, _ := os.Executable()
			cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
				exe, "-test.run=^TestHelperSend$")
			cmd.Env = append(os.Environ(), "SDEVENT_HELPER="+path)
			os.Chmod(dir, 0o755)
			os.Chmod(path, 0o666) // let nobody connect at all, to test the credential check
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Logf("helper: %v %s", err, out)
			}
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(got) + len(refusals)
		mu.Unlock()
		if n >= 1 && (os.Geteuid() != 0 || n >= 2) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != ev {
		t.Errorf("events %+v", got)
	}
	if os.Geteuid() == 0 {
		if len(refusals) != 1 || !errors.Is(refusals[0], ErrRefused) {
			t.Errorf("refusals %v", refusals)
		}
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket left after Serve: %v", err)
	}
}

// TestHelperSend is run as another user by TestSendServe.
func TestHelperSend(t *testing.T) {
	path := os.Getenv("SDEVENT_HELPER")
	if path == "" {
		t.Skip("helper")
	}
	if err := Send(path, Event{Type: JobEnd, JobID: 1, PID: os.Getpid(), Info: strconv.Itoa(os.Getuid())}, time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestListenRefusesNonSocket(t *testing.T) {
	p := filepath.Join(t.TempDir(), "file")
	os.WriteFile(p, nil, 0o600)
	if _, err := Listen(p, nil, -1); err == nil {
		t.Fatal("replaced a regular file")
	}
}

func TestRequest(t *testing.T) {
	dir, err := os.MkdirTemp("", "sdevent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "r.sock")
	l, err := Listen(path, nil, -1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	release := make(chan struct{})
	go func() {
		done <- l.ServeRequests(ctx, func(p Peer, ev Event, reply func(Reply) error) {
			switch ev.JobID {
			case 1: // answers
				r := Reply{JobID: ev.JobID, Job: ev.Job, Done: true, Targets: []TargetSummary{{Name: "/dr1", Done: true, Files: 54, Bytes: 350273}}}
				if err := reply(r); err != nil {
					t.Errorf("reply: %v", err)
				}
				if err := reply(r); err == nil {
					t.Error("second reply accepted")
				}
			case 2: // never answers
				<-release
			case 3: // returns without answering
			}
		}, func(p Peer, err error) { t.Errorf("refused: %v", err) })
	}()
	ev := Event{Type: JobEnd, JobID: 1, Job: "J1", WantSummary: true, WaitSecs: 5}
	r, err := Request(path, ev, 2*time.Second)
	if err != nil || r.Type != SummaryType || r.JobID != 1 || r.Job != "J1" || !r.Done || len(r.Targets) != 1 ||
		r.Targets[0] != (TargetSummary{Name: "/dr1", Done: true, Files: 54, Bytes: 350273}) {
		t.Errorf("Request = %+v, %v", r, err)
	}
	start := time.Now()
	ev.JobID = 2
	if _, err := Request(path, ev, 300*time.Millisecond); err == nil || time.Since(start) > 2*time.Second {
		t.Errorf("Request to a silent peer: %v after %s", err, time.Since(start))
	}
	close(release)
	ev.JobID = 3
	if _, err := Request(path, ev, 2*time.Second); !errors.Is(err, ErrNoReply) {
		t.Errorf("Request without reply: %v, want ErrNoReply", err)
	}
	if _, err := Request(filepath.Join(dir, "missing.sock"), ev, time.Second); err == nil {
		t.Error("Request to a missing socket succeeded")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
