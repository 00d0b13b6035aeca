package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/catchup"
	"github.com/openbrc/brc/internal/config"
	"github.com/openbrc/brc/internal/sdevent"
	"github.com/openbrc/brc/replica"
)

// fakeStream gives the passes a test pushes, each a list of volumes.
type fakeStream struct {
	passes chan []string

	mu      sync.Mutex
	nexts   int
	commits int
	ended   []uint32
	closed  bool
}

func newFakeStream() *fakeStream { return &fakeStream{passes: make(chan []string, 8)} }

func (f *fakeStream) Next(ctx context.Context) (func(context.Context) (*bacularec.Files, error), error) {
	f.mu.Lock()
	f.nexts++
	f.mu.Unlock()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case vols := <-f.passes:
		return func(context.Context) (*bacularec.Files, error) {
			var rf readerFlags
			return rf.files(vols)
		}, nil
	}
}

func (f *fakeStream) Commit() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commits++
	return nil
}

func (f *fakeStream) JobEnded(id uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended = append(f.ended, id)
}

func (f *fakeStream) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeStream) counts() (nexts, commits int, ended []uint32, closed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nexts, f.commits, append([]uint32(nil), f.ended...), f.closed
}

// syncBuffer is a log sink safe to read while the daemon writes.
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

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// daemonRun is a daemon started by startDaemon or startFollowDaemon.
type daemonRun struct {
	src      *fakeStream // startDaemon's
	log      *syncBuffer
	addr     string
	passes   chan string
	catchUps chan []catchup.Result
	reload   chan struct{}
	passWait time.Duration // how long waitPass waits
	cancel   context.CancelFunc
	done     chan error
}

// startDaemon runs a daemon whose data comes from a fakeStream (r.src).
func startDaemon(t *testing.T, conf string) *daemonRun {
	t.Helper()
	src := newFakeStream()
	r := launchDaemon(t, runOptions{conf: conf,
		newStream: func(*config.Config, *slog.Logger) (stream, error) { return src, nil }}, 60*time.Second)
	r.src = src
	return r
}

// launchDaemon runs the daemon of opt (its conf and data source) until the
// test ends, with its log, passes, catch-up passes and reloads in r.
func launchDaemon(t *testing.T, opt runOptions, passWait time.Duration) *daemonRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &daemonRun{log: &syncBuffer{}, passes: make(chan string, 64), catchUps: make(chan []catchup.Result, 64),
		reload: make(chan struct{}, 1), passWait: passWait, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan string, 1)
	opt.stderr, opt.reload = r.log, r.reload
	opt.ready = func(addr string) { ready <- addr }
	opt.onPass = func(result string, _ *replica.Summary) { r.passes <- result }
	opt.onCatchUp = func(res []catchup.Result) { r.catchUps <- res }
	go func() { r.done <- runDaemon(ctx, opt) }()
	select {
	case r.addr = <-ready:
	case err := <-r.done:
		t.Fatalf("daemon: %v\n%s", err, r.log.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("daemon not ready\n%s", r.log.String())
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			t.Errorf("daemon did not stop")
		}
	})
	return r
}

func (r *daemonRun) waitPass(t *testing.T) string {
	t.Helper()
	select {
	case res := <-r.passes:
		return res
	case <-time.After(r.passWait):
		t.Fatalf("no pass ended\n%s", r.log.String())
	}
	return ""
}

// stop cancels the daemon (SIGTERM in main) and returns what it returned.
func (r *daemonRun) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("daemon did not stop\n%s", r.log.String())
	}
	return nil
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

func getStatus(t *testing.T, addr string) statusDoc {
	t.Helper()
	var s statusDoc
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+addr+"/status")), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// metricValue finds the value of the series name{labels} in a /metrics
// page (labels as written by the client, e.g. target="/x").
func metricValue(page, series string) (float64, bool) {
	for _, l := range strings.Split(page, "\n") {
		if rest, ok := strings.CutPrefix(l, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	sock := filepath.Join(dir, "replicad.sock")
	base := "volume_dir = " + dir + "\nstate_dir = " + dir + "/state\nplugin_socket = " + sock +
		"\nplugin_users =\nmetrics_listen = " + freePort(t) + "\nlog_level = debug\nretry_backoff = 1\n"
	conf := writeConf(t, dir, base+"targets = "+a+";"+b+":bwlimit=100M\n")
	r := startDaemon(t, conf)

	// Pass 1: the plain volume, to two targets.
	r.src.passes <- []string{filepath.Join(fixtures, "bacula-9.6.7-plain-md5.vol")}
	if res := r.waitPass(t); res != "committed" {
		t.Fatalf("pass 1: %s\n%s", res, r.log.String())
	}
	page := httpGet(t, "http://"+r.addr+"/metrics")
	for _, tg := range []string{a, b} {
		if v, ok := metricValue(page, `openbrc_replicated_files_total{target="`+tg+`"}`); !ok || v != 54 {
			t.Errorf("files to %s: %v %v", tg, v, ok)
		}
		if v, ok := metricValue(page, `openbrc_jobs_total{result="done",target="`+tg+`"}`); !ok || v != 1 {
			t.Errorf("jobs done on %s: %v %v", tg, v, ok)
		}
		if v, ok := metricValue(page, `openbrc_rpo_seconds{target="`+tg+`"}`); !ok || v < 0 || v > 60 {
			t.Errorf("rpo of %s: %v %v", tg, v, ok)
		}
		if v, ok := metricValue(page, `openbrc_job_duration_seconds_count{target="`+tg+`"}`); !ok || v != 1 {
			t.Errorf("job durations of %s: %v %v", tg, v, ok)
		}
	}
	if v, _ := metricValue(page, `openbrc_passes_total{result="committed"}`); v != 1 {
		t.Errorf("passes: %v\n%s", v, page)
	}
	if v, ok := metricValue(page, `openbrc_queue_bytes{target="`+a+`"}`); !ok || v != 0 {
		t.Errorf("queue of %s between passes: %v %v", a, v, ok)
	}
	if got, want := tree(t, a), tree(t, b); got != want || !strings.Contains(got, "exactly-65536.bin") {
		t.Errorf("targets differ:\n%s\n---\n%s", got, want)
	}

	// The plugin tells of a job (as root: allowed).
	if err := sdevent.Send(sock, sdevent.Event{Type: sdevent.JobStart, JobID: 77, Job: "Backup.77", Time: time.Now()}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "job 77 in flight", 5*time.Second, func() bool { return len(getStatus(t, r.addr).JobsInFlight) == 1 })
	st := getStatus(t, r.addr)
	if st.Version != StatusVersion || st.State != "waiting" || st.Role != "standby" || st.Paused || st.Pass.Number != 1 ||
		st.Pass.LastResult != "committed" || st.Pass.LastFiles != 54 || len(st.Targets) != 2 ||
		st.Targets[0].Files != 54 || st.Targets[0].LastJobDone == nil || st.Targets[0].RPOSeconds == nil ||
		st.JobsInFlight[0].JobID != 77 || st.JobsInFlight[0].Job != "Backup.77" {
		t.Errorf("status %+v", st)
	}
	// replicad status asks the daemon.
	out, errOut, rc := replicad(t, "status", "-c", conf)
	if rc != 0 || !strings.Contains(out, `"version": "openbrc.status/v1"`) || !strings.Contains(out, `"job_id": 77`) {
		t.Errorf("replicad status: rc %d\n%s\n%s", rc, out, errOut)
	}
	if err := sdevent.Send(sock, sdevent.Event{Type: sdevent.JobEnd, JobID: 77, Job: "Backup.77"}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "job 77 ended", 5*time.Second, func() bool { _, _, ended, _ := r.src.counts(); return len(ended) == 1 && ended[0] == 77 })
	if n := len(getStatus(t, r.addr).JobsInFlight); n != 0 {
		t.Errorf("%d jobs in flight after job_end", n)
	}

	// SIGHUP with a third target: the next pass goes to all three.
	writeConf(t, dir, base+"targets = "+a+";"+b+":bwlimit=100M;"+c+"\n")
	r.reload <- struct{}{}
	waitFor(t, "reload", 5*time.Second, func() bool { return getStatus(t, r.addr).LastReload != nil })
	r.src.passes <- []string{accurate + "1-full.vol"}
	if res := r.waitPass(t); res != "committed" {
		t.Fatalf("pass 2: %s\n%s", res, r.log.String())
	}
	page = httpGet(t, "http://"+r.addr+"/metrics")
	if v, _ := metricValue(page, `openbrc_replicated_files_total{target="`+c+`"}`); v != 20 {
		t.Errorf("files to the new target: %v", v)
	}
	if v, _ := metricValue(page, `openbrc_replicated_files_total{target="`+a+`"}`); v != 74 {
		t.Errorf("files to %s: %v", a, v)
	}
	if st := getStatus(t, r.addr); len(st.Targets) != 3 || st.LastReload.Error != "" || st.Pass.Number != 2 {
		t.Errorf("status after reload %+v", st)
	}
	if _, err := os.Stat(filepath.Join(c, "tmp/brc-fixture-src")); err != nil {
		t.Errorf("new target: %v", err)
	}

	// A bad configuration on SIGHUP: logged, the old one stays.
	writeConf(t, dir, base+"targets = "+a+"\nmode = sideways\n")
	r.reload <- struct{}{}
	waitFor(t, "refused reload", 5*time.Second, func() bool {
		st := getStatus(t, r.addr)
		return st.LastReload != nil && st.LastReload.Error != ""
	})
	if st := getStatus(t, r.addr); len(st.Targets) != 3 || !strings.Contains(st.LastReload.Error, `mode: bad value "sideways"`) {
		t.Errorf("status after a bad reload %+v", st)
	}

	// SIGTERM (ctx cancelled): a clean stop, the source closed.
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	_, commits, _, closed := r.src.counts()
	if commits != 2 || !closed {
		t.Errorf("commits %d, closed %v", commits, closed)
	}
	logs := r.log.String()
	for _, want := range []string{`"msg":"replicad running"`, `"msg":"job started","job_id":77`, `"msg":"configuration reloaded"`,
		`"msg":"reload: configuration refused, the previous one stays in force"`, `"msg":"replicad stopping"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	// The catalog holds the jobs: replicate has nothing left to send.
	writeConf(t, dir, base+"targets = "+a+";"+b+":bwlimit=100M;"+c+"\n")
	out, _, rc = replicad(t, "replicate", "-c", conf, filepath.Join(fixtures, "bacula-9.6.7-plain-md5.vol"), accurate+"1-full.vol")
	if rc != 0 || strings.Count(out, ": ok: 0 files") != 2 || !strings.Contains(out, "target "+c+": ok: 54 files") {
		t.Errorf("replicate after run: rc %d\n%s", rc, out)
	}
}

// Promoted: replication pauses, Next is not called, nothing is committed.
func TestRunFailoverPauses(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	conf := writeConf(t, dir, "targets = "+a+"\nvolume_dir = "+dir+"\nstate_dir = "+dir+"/state\nplugin_socket = "+dir+
		"/s.sock\nmetrics_listen = "+freePort(t)+"\nhealthcheck_cmd = false\nhealthcheck_interval = 2\nhealthcheck_timeout = 1\n"+
		"healthcheck_failures = 1\npromote_cmd = true\n")
	r := startDaemon(t, conf)
	waitFor(t, "promotion", 15*time.Second, func() bool {
		st := getStatus(t, r.addr)
		return st.Role == "promoted" && st.Paused && st.State == "paused"
	})
	nexts, _, _, _ := r.src.counts()
	r.src.passes <- []string{filepath.Join(fixtures, "bacula-9.6.7-plain-md5.vol")}
	time.Sleep(2500 * time.Millisecond) // a health check or two more
	n2, commits, _, _ := r.src.counts()
	if n2 != nexts || commits != 0 || len(r.src.passes) != 1 {
		t.Errorf("paused, yet nexts %d -> %d, commits %d, passes waiting %d", nexts, n2, commits, len(r.src.passes))
	}
	page := httpGet(t, "http://"+r.addr+"/metrics")
	if v, _ := metricValue(page, `openbrc_replication_paused`); v != 1 {
		t.Errorf("paused metric %v", v)
	}
	if v, _ := metricValue(page, `openbrc_failover_role{role="promoted"}`); v != 1 {
		t.Errorf("role metric %v", v)
	}
	if v, _ := metricValue(page, `openbrc_failover_events_total{event="check-failed"}`); v < 1 {
		t.Errorf("failed checks %v", v)
	}
	if _, err := os.Stat(a); err == nil {
		t.Errorf("target written while promoted")
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	logs := r.log.String()
	if !strings.Contains(logs, "replication paused") {
		t.Errorf("log:\n%s", logs)
	}
	state, _ := os.ReadFile(filepath.Join(dir, "state", "failover.json"))
	if !strings.Contains(string(state), `"promoted"`) {
		t.Errorf("failover state %s", state)
	}
}

// A peer that is neither root nor a plugin user is refused and logged.
func TestRunRefusesPeer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as another user")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid := 0 // the socket's group: bacula if it exists, else root's
	if g, err := user.LookupGroup("bacula"); err == nil {
		gid, _ = strconv.Atoi(g.Gid)
	}
	// A directory everyone may traverse, for the socket and the helper.
	pub, err := os.MkdirTemp("", "brc-sock")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(pub)
	os.Chmod(pub, 0o755)
	helperSrc := filepath.Join(pub, "peer.go")
	os.WriteFile(helperSrc, []byte(`package main

import ("net"; "os"; "time")

func main() {
	c, err := net.Dial("unix", os.Args[1])
	if err != nil { os.Exit(3) }
	c.Write([]byte("{\"type\":\"job_start\",\"job_id\":13}\n"))
	time.Sleep(200 * time.Millisecond)
}
`), 0o644)
	helper := filepath.Join(pub, "peer")
	if out, err := exec.Command("go", "build", "-o", helper, helperSrc).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	os.Chmod(helper, 0o755)

	dir := t.TempDir()
	sock := filepath.Join(pub, "replicad.sock")
	conf := writeConf(t, dir, "targets = "+dir+"/a\nvolume_dir = "+dir+"\nstate_dir = "+dir+"/state\nplugin_socket = "+sock+
		"\nplugin_users = root\nmetrics_listen = "+freePort(t)+"\n")
	r := startDaemon(t, conf)
	cmd := exec.Command(helper, sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("peer: %v %s", err, out)
	}
	waitFor(t, "refusal logged", 5*time.Second, func() bool {
		return strings.Contains(r.log.String(), `"msg":"plugin socket: peer refused","uid":`+nobody.Uid)
	})
	page := httpGet(t, "http://"+r.addr+"/metrics")
	if v, _ := metricValue(page, "openbrc_plugin_refused_total"); v != 1 {
		t.Errorf("refused metric %v", v)
	}
	if st := getStatus(t, r.addr); len(st.JobsInFlight) != 0 {
		t.Errorf("refused peer's event taken: %+v", st.JobsInFlight)
	}
	if !strings.Contains(r.log.String(), `"level":"WARN"`) {
		t.Errorf("refusal not at warn:\n%s", r.log.String())
	}
}

// The binary, following a volume directory (internal/source.Follow):
// SIGHUP reloads, SIGTERM stops it cleanly with the position saved.
func TestRunBinary(t *testing.T) {
	dir := t.TempDir()
	vols := filepath.Join(dir, "vols")
	os.Mkdir(vols, 0o755)
	copyFile(t, filepath.Join(fixtures, "bacula-9.6.7-plain-md5.vol"), filepath.Join(vols, "Vol-0001"))
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	addr := freePort(t)
	base := "volume_dir = " + vols + "\nstate_dir = " + dir + "/state\nplugin_socket = " + dir + "/s.sock\nplugin_users =\nidle_secs = 1\nmetrics_listen = " + addr + "\n"
	conf := writeConf(t, dir, base+"targets = "+a+"\n")
	if out, errOut, rc := replicad(t, "check-config", "-c", conf); rc != 0 || !strings.HasSuffix(out, "ok\n") {
		t.Fatalf("check-config: rc %d\n%s\n%s", rc, out, errOut)
	}
	var logs syncBuffer
	cmd := exec.Command(bin, "run", "-c", conf)
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	committed := func(n int) func() bool {
		return func() bool {
			resp, err := http.Get("http://" + addr + "/status")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			var s statusDoc
			json.NewDecoder(resp.Body).Decode(&s)
			return s.Pass.Number == n && s.Pass.LastResult == "committed" && s.Pass.Started == nil
		}
	}
	waitFor(t, "first pass", 30*time.Second, committed(1))
	if _, err := os.Stat(filepath.Join(a, "tmp/brc-fixture-src/plain/data/exactly-65536.bin")); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	// SIGHUP: a second target; then a new volume for both.
	writeConf(t, dir, base+"targets = "+a+";"+b+"\n")
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "reload", 10*time.Second, func() bool { return strings.Contains(logs.String(), `"msg":"configuration reloaded"`) })
	copyFile(t, accurate+"1-full.vol", filepath.Join(vols, "Vol-0002"))
	waitFor(t, "second pass", 30*time.Second, committed(2))
	page := httpGet(t, "http://"+addr+"/metrics")
	if v, _ := metricValue(page, `openbrc_replicated_files_total{target="`+b+`"}`); v != 20 {
		t.Errorf("files to the new target %v\n%s", v, logs.String())
	}
	if v, _ := metricValue(page, `openbrc_replicated_files_total{target="`+a+`"}`); v != 74 {
		t.Errorf("files to %s %v", a, v)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit after SIGTERM\n%s", logs.String())
	}
	st, err := os.ReadFile(filepath.Join(dir, "state", "source-follow.json"))
	if err != nil || !strings.Contains(string(st), "Vol-0002") {
		t.Errorf("position not saved: %v %s", err, st)
	}
	if _, err := os.Stat(filepath.Join(dir, "s.sock")); err == nil {
		t.Errorf("plugin socket left behind")
	}
	// Started again, nothing new: nothing is sent again.
	cmd = exec.Command(bin, "run", "-c", conf)
	var logs2 syncBuffer
	cmd.Stderr = &logs2
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, "restart", 10*time.Second, func() bool { return strings.Contains(logs2.String(), `"msg":"replicad running"`) })
	time.Sleep(1500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil || strings.Contains(logs2.String(), `"msg":"pass started"`) {
		t.Errorf("restart: %v\n%s", err, logs2.String())
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	conf := writeConf(t, dir, "targets = "+dir+"/a:bwlimit=1M\nvolume_dir = "+dir+"\nstate_dir = "+dir+"/state\nplugin_users = root\nmetrics_listen = off\n"+
		"healthcheck_cmd = curl -fsS http://primary/health\nencrypt_key = "+strings.Repeat("ab", 32)+"\n")
	out, errOut, rc := replicad(t, "check-config", "-c", conf)
	for _, want := range []string{"source: volume_dir " + dir, "target " + dir + "/a: writable, bwlimit 1048576 bytes/s",
		"encryption yes (encrypt_key)", "allowed: root\n", "metrics and status: off", `failover: healthcheck "curl -fsS http://primary/health" every 30s`, "\nok\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q", want)
		}
	}
	if rc != 0 {
		t.Errorf("rc %d\n%s\n%s", rc, out, errOut)
	}
	// Problems are all listed, and the exit status says so.
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o600)
	conf = writeConf(t, dir, "targets = "+dir+"/file/x\nvolume_dir = "+dir+"/none\nstate_dir = "+dir+"/state\nencrypt_key_file = "+dir+"/nokey\n")
	out, errOut, rc = replicad(t, "check-config", "-c", conf)
	if rc != 1 || !strings.Contains(out, "PROBLEM: volume_dir:") || !strings.Contains(out, "PROBLEM: target "+dir+"/file/x:") ||
		!strings.Contains(out, "PROBLEM: encrypt_key_file:") || !strings.Contains(errOut, "3 problems") {
		t.Errorf("rc %d\n%s\n%s", rc, out, errOut)
	}
	// run needs exactly one source.
	conf = writeConf(t, dir, "targets = /x\n")
	if _, errOut, rc := replicad(t, "check-config", "-c", conf); rc != 1 || !strings.Contains(errOut, "set volume_dir or fifo_path") {
		t.Errorf("rc %d: %s", rc, errOut)
	}
	if _, errOut, rc := replicad(t, "run", "-c", conf); rc != 1 || !strings.Contains(errOut, "set volume_dir or fifo_path") {
		t.Errorf("run: rc %d: %s", rc, errOut)
	}
	conf = writeConf(t, dir, "targets = /x\nvolume_dir = /v\nplugin_users = no-such-user-brc\n")
	if out, errOut, rc := replicad(t, "check-config", "-c", conf); rc != 1 || !strings.Contains(out, "PROBLEM: config: "+conf+":3: plugin_users:") ||
		!strings.Contains(out, "no-such-user-brc") {
		t.Errorf("unknown user: rc %d: %s\n%s", rc, out, errOut)
	}
	// status without a daemon.
	conf = writeConf(t, dir, "targets = /x\nmetrics_listen = "+freePort(t)+"\n")
	if _, errOut, rc := replicad(t, "status", "-c", conf); rc != 1 || !strings.Contains(errOut, "is replicad run running?") {
		t.Errorf("status: rc %d: %s", rc, errOut)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "copy")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil {
		t.Fatal(err)
	}
}

// The binary reading a Fifo device (internal/source.FIFO).
func TestRunBinaryFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "sd.fifo")
	a := filepath.Join(dir, "a")
	addr := freePort(t)
	conf := writeConf(t, dir, "targets = "+a+"\nfifo_path = "+fifo+"\nfifo_copy_dir = "+dir+"/copies\nstate_dir = "+dir+
		"/state\nplugin_socket = "+dir+"/s.sock\nidle_secs = 1\nmetrics_listen = "+addr+"\n")
	var logs syncBuffer
	cmd := exec.Command(bin, "run", "-c", conf)
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, "the FIFO", 10*time.Second, func() bool {
		fi, err := os.Stat(fifo)
		return err == nil && fi.Mode()&os.ModeNamedPipe != 0
	})
	vol, err := os.ReadFile(filepath.Join(fixtures, "bacula-9.6.7-plain-md5.vol"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(vol); err != nil {
		t.Fatal(err)
	}
	w.Close()
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	}()
	waitFor(t, "the pass", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var s statusDoc
		json.NewDecoder(resp.Body).Decode(&s)
		return s.Pass.LastResult == "committed"
	})
	page := httpGet(t, "http://"+addr+"/metrics")
	if v, _ := metricValue(page, `openbrc_replicated_files_total{target="`+a+`"}`); v != 54 {
		t.Errorf("files %v\n%s", v, logs.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s", err, logs.String())
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "copies")); len(ents) != 1 {
		t.Errorf("copies: %v", ents)
	}
}
