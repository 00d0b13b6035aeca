package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/openbrc/brc/internal/sdevent"
)

// The plugin's job_end with want_summary gets, once the pass that
// replicated the job ended, what every target made of it; a job that no
// pass meets (a restore) gets a note; a request that times out answers
// with what is known (done false).
func TestJobSummary(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	sock := filepath.Join(dir, "replicad.sock")
	conf := writeConf(t, dir, "volume_dir = "+dir+"\nstate_dir = "+dir+"/state\nplugin_socket = "+sock+
		"\nplugin_users =\nmetrics_listen = "+freePort(t)+"\nretry_backoff = 1\ntargets = "+a+";"+b+"\n")
	r := startDaemon(t, conf)

	const jobID, job = 1, "PlainMD5.2026-11-27_04.46.48_07" // of the plain volume
	ev := sdevent.Event{Type: sdevent.JobEnd, JobID: jobID, Job: job, Time: time.Now(), WantSummary: true, WaitSecs: 60}
	type result struct {
		r   sdevent.Reply
		err error
		at  time.Time
	}
	got := make(chan result, 1)
	go func() {
		rep, err := sdevent.Request(sock, ev, 61*time.Second)
		got <- result{rep, err, time.Now()}
	}()
	time.Sleep(200 * time.Millisecond) // the request waits for the pass
	r.src.passes <- []string{filepath.Join(fixtures, "bacula-9.6.7-plain-md5.vol")}
	if res := r.waitPass(t); res != "committed" {
		t.Fatalf("pass: %s\n%s", res, r.log.String())
	}
	passEnd := time.Now()
	var res result
	select {
	case res = <-got:
	case <-time.After(30 * time.Second):
		t.Fatalf("no summary 30s after the pass\n%s", r.log.String())
	}
	if res.err != nil {
		t.Fatalf("Request: %v\n%s", res.err, r.log.String())
	}
	if d := res.at.Sub(passEnd); d > 5*time.Second {
		t.Errorf("summary %s after the pass", d)
	}
	rep := res.r
	if rep.Type != sdevent.SummaryType || rep.JobID != jobID || rep.Job != job || !rep.Done || len(rep.Targets) != 2 {
		t.Fatalf("reply %+v", rep)
	}
	for i, tg := range []string{a, b} {
		ts := rep.Targets[i]
		if ts.Name != tg || !ts.Done || ts.Files != 54 || ts.Bytes <= 0 || ts.Failed != 0 || ts.JobsBehind != 0 || ts.Error != "" {
			t.Errorf("target %d: %+v", i, ts)
		}
	}
	// Asked again later: answered at once, from memory.
	start := time.Now()
	rep2, err := sdevent.Request(sock, ev, 5*time.Second)
	if err != nil || !rep2.Done || len(rep2.Targets) != 2 || rep2.Targets[0].Files != 54 || time.Since(start) > 2*time.Second {
		t.Errorf("second request: %+v %v after %s", rep2, err, time.Since(start))
	}

	// A job with no data in the volumes (a restore): a note, after the grace.
	start = time.Now()
	rep3, err := sdevent.Request(sock, sdevent.Event{Type: sdevent.JobEnd, JobID: 99, Job: "Restore.99", WantSummary: true, WaitSecs: 30}, 31*time.Second)
	if err != nil || !rep3.Done || rep3.Note == "" || len(rep3.Targets) != 0 || time.Since(start) > notSeenGrace+2*time.Second {
		t.Errorf("restore job: %+v %v after %s", rep3, err, time.Since(start))
	}
	// The wait runs out: what is known, done false.
	start = time.Now()
	rep4, err := sdevent.Request(sock, sdevent.Event{Type: sdevent.JobEnd, JobID: 100, Job: "Backup.100", WantSummary: true, WaitSecs: 1}, 5*time.Second)
	if err != nil || rep4.Done || len(rep4.Targets) != 2 || rep4.Targets[0].Done || time.Since(start) > 3*time.Second {
		t.Errorf("timed-out request: %+v %v after %s", rep4, err, time.Since(start))
	}
	// A plain job_end (no want_summary) still works as before.
	if err := sdevent.Send(sock, sdevent.Event{Type: sdevent.JobEnd, JobID: 101}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "job 101 ended", 5*time.Second, func() bool {
		_, _, ended, _ := r.src.counts()
		return len(ended) > 0 && ended[len(ended)-1] == 101
	})
}
