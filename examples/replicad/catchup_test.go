package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openbrc/brc/internal/catchup"
	"github.com/openbrc/brc/replica"
)

// startFollowDaemon runs a daemon following a volume directory (the real
// internal/source.Follow), as systemd runs it. It must stop without error.
func startFollowDaemon(t *testing.T, conf string) *daemonRun {
	t.Helper()
	r := launchDaemon(t, runOptions{conf: conf}, 30*time.Second)
	t.Cleanup(func() {
		if err := r.stop(t); err != nil {
			t.Errorf("daemon: %v", err)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", r.log.String())
		}
	})
	return r
}

// pendingJobs reads the pending jobs of each target from the latest RPO
// report under dir/reports.
func pendingJobs(t *testing.T, dir string) map[string]int {
	t.Helper()
	var report struct {
		Targets []struct {
			Name        string `json:"name"`
			PendingJobs int    `json:"pending_jobs"`
		} `json:"targets"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, "reports", "latest.json"))
	if err := json.Unmarshal(b, &report); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, rt := range report.Targets {
		out[rt.Name] = rt.PendingJobs
	}
	return out
}

func targetOf(t *testing.T, addr, name string) *targetStatus {
	t.Helper()
	for _, ts := range getStatus(t, addr).Targets {
		if ts.Name == name {
			return ts
		}
	}
	t.Fatalf("no target %s in the status", name)
	return nil
}

// catalogJobs reads a target's JobLog (the daemon stopped).
func catalogJobs(t *testing.T, stateDir, target string) map[string]replica.JobRecord {
	t.Helper()
	cat, err := replica.OpenCatalog(filepath.Join(stateDir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	out := map[string]replica.JobRecord{}
	if err := cat.Jobs(target, func(r replica.JobRecord) error { out[r.Job] = r; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

const (
	accurateFull = "Accurate.2026-11-27_04.48.35_07" // JobId 13
	accurateIncr = "Accurate.2026-11-27_04.48.42_12" // JobId 14
	accurateDiff = "Accurate.2026-11-27_04.48.49_17" // JobId 15
	// modify.txt as each stage left it (trees/accurate-N.tsv).
	modifyStage2 = "b03d44cd60d71de68a4aca7808c6f768802f6d6c414430ff8ccea10c1aa57b4c"
	modifyStage3 = "77774d2f39299ce8479e4bd4f37ad338057ba8480abd7aedcf17186129702f74"
)

// A target that cannot be written misses job 13, is held back from job
// 14, and once it can be written again is caught up by the daemon alone,
// in order: it ends up holding exactly what the healthy target holds (job
// 14's modify.txt, not job 13's; what job 14 deleted, gone), then takes
// part in live passes again. The healthy target receives nothing twice.
func TestRunCatchUp(t *testing.T) {
	dir := t.TempDir()
	vols := filepath.Join(dir, "vols")
	os.Mkdir(vols, 0o755)
	copyFile(t, accurate+"1-full.vol", filepath.Join(vols, "Vol-0001"))
	good := filepath.Join(dir, "good")
	blocker := filepath.Join(dir, "blocker")
	os.WriteFile(blocker, nil, 0o600) // the target's parent is a file: it cannot be written
	bad := filepath.Join(blocker, "dr")
	state := filepath.Join(dir, "state")
	conf := writeConf(t, dir, "targets = "+good+";"+bad+"\nvolume_dir = "+vols+"\nstate_dir = "+state+
		"\nplugin_socket = "+dir+"/s.sock\nplugin_users =\nidle_secs = 1\nmetrics_listen = "+freePort(t)+
		"\nretry_attempts = 1\nretry_backoff = 1\nrpo_report_dir = "+dir+"/reports\n")
	r := startFollowDaemon(t, conf)

	// Pass 1: job 13 reaches the good target only.
	if res := r.waitPass(t); res != "incomplete" {
		t.Fatalf("pass 1: %s", res)
	}
	ts := targetOf(t, r.addr, bad)
	if ts.JobsBehind != 1 || ts.CatchUp == nil || ts.CatchUp.NextAttempt == nil || len(ts.CatchUp.Jobs) != 1 || ts.CatchUp.Jobs[0] != accurateFull {
		t.Fatalf("status of the failed target after pass 1: %+v %+v", ts, ts.CatchUp)
	}
	if g := targetOf(t, r.addr, good); g.JobsBehind != 0 || g.CatchUp != nil {
		t.Fatalf("good target: %+v", g)
	}
	// Pass 2: job 14; the failed target is held back from it.
	copyFile(t, accurate+"2-incr.vol", filepath.Join(vols, "Vol-0002"))
	if res := r.waitPass(t); res != "incomplete" {
		t.Fatalf("pass 2: %s", res)
	}
	ts = targetOf(t, r.addr, bad)
	if ts.JobsBehind != 2 || len(ts.CatchUp.Jobs) != 2 || ts.CatchUp.Jobs[1] != accurateIncr {
		t.Fatalf("status after pass 2: %+v %+v", ts, ts.CatchUp)
	}
	page := httpGet(t, "http://"+r.addr+"/metrics")
	if v, _ := metricValue(page, `openbrc_lag_jobs{target="`+bad+`"}`); v != 2 {
		t.Errorf("lag_jobs of the failed target: %v", v)
	}
	// Catch-up passes while it still fails: no progress, later attempts.
	var res []catchup.Result
	for behind := 0; behind != 2; {
		select {
		case res = <-r.catchUps:
		case <-time.After(20 * time.Second):
			t.Fatal("no catch-up attempt")
		}
		if len(res) != 1 || res[0].Target != bad || res[0].Err == "" || len(res[0].Done) != 0 || res[0].CaughtUp {
			t.Fatalf("catch-up of a target still failing: %+v", res)
		}
		behind = res[0].Behind
	}

	// Repaired: caught up within a bounded time (the backoff is 1s, doubled).
	os.Remove(blocker)
	deadline := time.After(30 * time.Second)
	for caught := false; !caught; {
		select {
		case res = <-r.catchUps:
			for _, x := range res {
				caught = caught || x.Target == bad && x.CaughtUp
			}
		case <-deadline:
			t.Fatal("the repaired target was not caught up")
		}
	}
	if res[0].Target != bad || len(res[0].Done) != 2 || res[0].Done[0] != accurateFull || res[0].Done[1] != accurateIncr {
		t.Fatalf("caught up with %+v, want jobs 13 then 14", res)
	}
	if got, want := tree(t, bad), tree(t, good); got != want {
		t.Fatalf("the caught-up target differs from the healthy one:\n%s\n---\n%s", got, want)
	}
	modify := filepath.Join("tmp/brc-fixture-src/accurate/modify.txt")
	if got := sha(t, filepath.Join(bad, modify)); got != modifyStage2 {
		t.Fatalf("modify.txt is not job 14's version: %s", got)
	}
	if _, err := os.Stat(filepath.Join(bad, "tmp/brc-fixture-src/accurate/deldir")); !os.IsNotExist(err) {
		t.Fatalf("deldir, deleted by job 14, is back: %v", err)
	}
	ts = targetOf(t, r.addr, bad)
	if ts.JobsBehind != 0 || ts.CatchUp != nil || ts.Files != 37 {
		t.Fatalf("status once caught up: %+v", ts)
	}
	for name, n := range pendingJobs(t, dir) {
		if n != 0 {
			t.Errorf("report: %s has %d pending jobs once caught up", name, n)
		}
	}

	// Back in live passes: job 15 reaches both, live.
	copyFile(t, accurate+"3-diff.vol", filepath.Join(vols, "Vol-0003"))
	if res := r.waitPass(t); res != "committed" {
		t.Fatalf("pass 3: %s", res)
	}
	if got, want := tree(t, bad), tree(t, good); got != want {
		t.Fatalf("after job 15 the targets differ:\n%s\n---\n%s", got, want)
	}
	if got := sha(t, filepath.Join(bad, modify)); got != modifyStage3 {
		t.Fatalf("modify.txt is not job 15's version: %s", got)
	}
	page = httpGet(t, "http://"+r.addr+"/metrics")
	for series, want := range map[string]float64{
		`openbrc_replicated_files_total{target="` + good + `"}`:   20 + 17 + 23,
		`openbrc_replicated_files_total{target="` + bad + `"}`:    20 + 17 + 23,
		`openbrc_jobs_total{result="done",target="` + good + `"}`: 3,
		`openbrc_jobs_total{result="done",target="` + bad + `"}`:  3,
		`openbrc_lag_jobs{target="` + bad + `"}`:                  0,
		`openbrc_passes_total{result="committed"}`:                1,
		`openbrc_passes_total{result="incomplete"}`:               2,
	} {
		if v, _ := metricValue(page, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
	if err := r.stop(t); err != nil {
		t.Errorf("daemon: %v", err)
	}

	// The JobLog: each job once on the healthy target; on the other,
	// done, after the attempts that failed.
	gj := catalogJobs(t, state, good)
	for _, j := range []string{accurateFull, accurateIncr, accurateDiff} {
		if rec := gj[j]; !rec.Done || rec.Attempts != 1 {
			t.Errorf("healthy target, %s: %+v", j, rec)
		}
	}
	bj := catalogJobs(t, state, bad)
	for _, j := range []string{accurateFull, accurateIncr, accurateDiff} {
		if rec := bj[j]; !rec.Done {
			t.Errorf("caught-up target, %s: %+v", j, rec)
		}
	}
	logs := r.log.String()
	for _, want := range []string{`"msg":"target behind: it is held back from later jobs and caught up from the volumes, in order"`,
		`"msg":"jobs held back from a target behind"`, `"msg":"catch-up: the target is still behind"`,
		`"msg":"target caught up: it holds every job read, and takes part in live passes again"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s", want)
		}
	}
}

// The volume of the job a target missed is recycled (another volume
// under the same name) before the target recovers: the job is reported
// lost (log, status, catalog, RPO report) and nothing of the new volume's
// content is taken for it; the new volume's own job reaches the target
// once it recovers.
func TestRunCatchUpRecycledVolume(t *testing.T) {
	dir := t.TempDir()
	vols := filepath.Join(dir, "vols")
	os.Mkdir(vols, 0o755)
	vol := filepath.Join(vols, "Vol-0001")
	copyFile(t, accurate+"1-full.vol", vol)
	good := filepath.Join(dir, "good")
	blocker := filepath.Join(dir, "blocker")
	os.WriteFile(blocker, nil, 0o600)
	bad := filepath.Join(blocker, "dr")
	state := filepath.Join(dir, "state")
	conf := writeConf(t, dir, "targets = "+good+";"+bad+"\nvolume_dir = "+vols+"\nstate_dir = "+state+
		"\nplugin_socket = "+dir+"/s.sock\nplugin_users =\nidle_secs = 1\nmetrics_listen = "+freePort(t)+
		"\nretry_attempts = 0\nretry_backoff = 1\nrpo_report_dir = "+dir+"/reports\n")
	r := startFollowDaemon(t, conf)
	if res := r.waitPass(t); res != "incomplete" {
		t.Fatalf("pass 1: %s", res)
	}
	// Recycled in place: truncated and written again with another label.
	plain, err := os.ReadFile(filepath.Join(fixtures, "bacula-9.6.7-plain-md5.vol"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vol, plain, 0o640); err != nil {
		t.Fatal(err)
	}
	if res := r.waitPass(t); res != "incomplete" {
		t.Fatalf("pass 2: %s", res)
	}
	os.Remove(blocker)
	waitFor(t, "the catch-up", 30*time.Second, func() bool {
		ts := targetOf(t, r.addr, bad)
		return ts.JobsBehind == 0 && len(ts.LostJobs) == 1
	})
	ts := targetOf(t, r.addr, bad)
	// (Relabelled, or truncated if it was looked at while being rewritten.)
	if l := ts.LostJobs[0]; l.Job != accurateFull || l.JobID != 13 || !strings.Contains(l.Reason, "Vol-0001") ||
		!strings.Contains(l.Reason, "relabelled") && !strings.Contains(l.Reason, "truncated") {
		t.Fatalf("lost job %+v", l)
	}
	// Nothing of job 13 on the target; the plain job, as on the healthy one.
	if _, err := os.Stat(filepath.Join(bad, "tmp/brc-fixture-src/accurate")); !os.IsNotExist(err) {
		t.Fatalf("job 13's files on the target: %v", err)
	}
	if got, want := tree(t, filepath.Join(bad, "tmp/brc-fixture-src/plain")), tree(t, filepath.Join(good, "tmp/brc-fixture-src/plain")); got != want || got == "" {
		t.Fatalf("plain job:\n%s\n---\n%s", got, want)
	}
	for name, n := range pendingJobs(t, dir) {
		if want := map[string]int{good: 0, bad: 1}[name]; n != want {
			t.Errorf("report: %s has %d pending jobs, want %d", name, n, want)
		}
	}
	if err := r.stop(t); err != nil {
		t.Errorf("daemon: %v", err)
	}
	if rec := catalogJobs(t, state, bad)[accurateFull]; rec.Done || !strings.HasPrefix(rec.Error, "lost: ") || !strings.Contains(rec.Error, "new backup") {
		t.Errorf("catalog record of the lost job: %+v", rec)
	}
	if !strings.Contains(r.log.String(), `"msg":"job lost for the target: its data is gone, only a new backup brings its files back"`) {
		t.Errorf("loss not logged")
	}
	if n := strings.Count(r.log.String(), `"msg":"job lost for the target`); n != 1 {
		t.Errorf("loss logged %d times", n)
	}
}

// FIFO mode: with fifo_copy_dir a target that missed the job is caught
// up from the copy; without, the job is gone: reported lost once, and
// the target is not held back for it.
func TestRunCatchUpFIFO(t *testing.T) {
	vol, err := os.ReadFile(filepath.Join(fixtures, "bacula-9.6.7-plain-md5.vol"))
	if err != nil {
		t.Fatal(err)
	}
	for _, keep := range []bool{true, false} {
		t.Run(map[bool]string{true: "copies", false: "no-copies"}[keep], func(t *testing.T) {
			dir := t.TempDir()
			fifo := filepath.Join(dir, "sd.fifo")
			good := filepath.Join(dir, "good")
			blocker := filepath.Join(dir, "blocker")
			os.WriteFile(blocker, nil, 0o600)
			bad := filepath.Join(blocker, "dr")
			body := "targets = " + good + ";" + bad + "\nfifo_path = " + fifo + "\nstate_dir = " + dir + "/state" +
				"\nplugin_socket = " + dir + "/s.sock\nplugin_users =\nidle_secs = 1\nmetrics_listen = " + freePort(t) +
				"\nretry_attempts = 0\nretry_backoff = 1\n"
			if keep {
				body += "fifo_copy_dir = " + dir + "/copies\n"
			}
			r := startFollowDaemon(t, writeConf(t, dir, body))
			waitFor(t, "the FIFO", 10*time.Second, func() bool {
				fi, err := os.Stat(fifo)
				return err == nil && fi.Mode()&os.ModeNamedPipe != 0
			})
			w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(vol); err != nil {
				t.Fatal(err)
			}
			w.Close()
			if res := r.waitPass(t); res != "incomplete" {
				t.Fatalf("pass: %s", res)
			}
			ts := targetOf(t, r.addr, bad)
			if !keep {
				if ts.JobsBehind != 0 || ts.CatchUp != nil || len(ts.LostJobs) != 1 || ts.LostJobs[0].JobID != 1 ||
					!strings.Contains(ts.LostJobs[0].Reason, "fifo_copy_dir is not set") {
					t.Fatalf("status %+v", ts)
				}
				if n := strings.Count(r.log.String(), `"msg":"job lost for the target`); n != 1 {
					t.Fatalf("loss logged %d times", n)
				}
				return
			}
			if ts.JobsBehind != 1 || len(ts.LostJobs) != 0 {
				t.Fatalf("status %+v", ts)
			}
			os.Remove(blocker)
			waitFor(t, "the catch-up", 30*time.Second, func() bool { return targetOf(t, r.addr, bad).JobsBehind == 0 })
			if got, want := tree(t, bad), tree(t, good); got != want || !strings.Contains(got, "exactly-65536.bin") {
				t.Fatalf("caught up from the copy:\n%s\n---\n%s", got, want)
			}
		})
	}
}
