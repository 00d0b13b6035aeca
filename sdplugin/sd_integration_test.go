//go:build integration

package sdplugin_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openbrc/brc/internal/sdevent"
)

// TestRealSD loads brc-replica-sd.so into the real bacula-sd 9.6.7 of the
// project's lab (scripts/lab, PLUGIN_DIR), runs one backup job and checks
// what replicad's socket receives; then bls loads the plugin too, and
// stopping the SD unloads it. Missing prerequisites skip it, except under
// CI=true, where they fail it:
//
//	go test -tags integration -count=1 -run RealSD -v ./sdplugin/
func TestRealSD(t *testing.T) {
	prereq := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("prerequisite missing: "+format, args...)
		}
		t.Skipf("prerequisite missing: "+format, args...)
	}
	if runtime.GOOS != "linux" {
		prereq("Linux (have %s)", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		prereq("root (the lab runs Bacula's daemons as root)")
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	scripts := filepath.Join(repo, "scripts", "lab")
	for _, f := range []string{"/usr/sbin/bacula-sd", "/usr/sbin/bacula-dir", "/usr/sbin/bacula-fd", "/usr/sbin/bconsole",
		"/usr/sbin/bls", "/usr/share/bacula-director/make_sqlite3_tables",
		filepath.Join(scripts, "up.sh"), filepath.Join(scripts, "down.sh"), filepath.Join(scripts, "backup.sh"),
		filepath.Join(scripts, "fixture-tree.sh"), filepath.Join(scripts, "lib.sh")} {
		if _, err := os.Stat(f); err != nil {
			prereq("%v (run scripts/lab/install.sh as root)", err)
		}
	}
	for _, c := range []string{"bash", "gcc", "sqlite3", "openssl", "setsid", "timeout", "mknod", "setfacl"} {
		if _, err := exec.LookPath(c); err != nil {
			prereq("%s: %v", c, err)
		}
	}
	if out, err := exec.Command("pgrep", "-a", "bacula-sd").Output(); err == nil && len(out) > 0 {
		// Other labs (CI, benchmarks) may run at the same time: this one
		// uses ports of its own and touches only its own daemons.
		t.Logf("other bacula-sd processes running (ports chosen apart from theirs):\n%s", out)
	}

	w, err := os.MkdirTemp("", "brc-sd-it-")
	if err != nil {
		t.Fatal(err)
	}
	pluginDir := filepath.Join(w, "plugins")
	so := filepath.Join(pluginDir, "brc-replica-sd.so")
	socket := filepath.Join(w, "replicad.sock")
	// The plugin's configuration file (a path of the test's, not
	// /etc/openbrc/replica-sd.conf): the socket comes from the
	// environment, the summary wait from the file.
	sdConf := filepath.Join(w, "replica-sd.conf")
	if err := os.WriteFile(sdConf, []byte("# test\nsummary_wait = 10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	run := func(timeout time.Duration, env []string, name string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir, cmd.Env = repo, append(os.Environ(), env...)
		var b bytes.Buffer
		cmd.Stdout, cmd.Stderr = &b, &b
		err := cmd.Run()
		if ctx.Err() != nil {
			err = fmt.Errorf("%v (timeout %s)", err, timeout)
		}
		return b.String(), err
	}
	if out, err := run(5*time.Minute, []string{"CGO_ENABLED=1"}, gobin, "build", "-buildmode=c-shared", "-o", so, "./examples/replica-sd"); err != nil {
		t.Fatalf("go build -buildmode=c-shared: %v\n%s", err, out)
	}
	if out, err := run(2*time.Minute, nil, filepath.Join(scripts, "fixture-tree.sh"), "plain", filepath.Join(w, "src", "plain")); err != nil {
		t.Fatalf("fixture-tree.sh plain: %v\n%s", err, out)
	}

	col := &collector{}
	ln, err := sdevent.Listen(socket, nil, -1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		// A fake replicad: it answers the summary requests of job_end.
		ln.ServeRequests(ctx, func(_ sdevent.Peer, ev sdevent.Event, reply func(sdevent.Reply) error) {
			col.mu.Lock()
			col.events = append(col.events, ev)
			col.mu.Unlock()
			if ev.WantSummary {
				reply(*summaryOf(ev))
			}
		}, func(_ sdevent.Peer, err error) {
			col.mu.Lock()
			col.errs = append(col.errs, err)
			col.mu.Unlock()
		})
	}()
	defer func() { cancel(); <-served }()

	// Should this process die, a watchdog in a session of its own still
	// stops the lab's daemons.
	reaper := exec.Command("bash", "-c", `while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2/down.sh" "$3"`,
		"brc-sd-it-reaper", strconv.Itoa(os.Getpid()), scripts, w)
	reaper.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := reaper.Start(); err != nil {
		t.Fatal(err)
	}
	var env []string
	down := func() string {
		out, err := run(2*time.Minute, env, filepath.Join(scripts, "down.sh"), w)
		if err != nil {
			t.Errorf("down.sh: %v\n%s", err, out)
		}
		return out
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			down()
		}
		syscall.Kill(-reaper.Process.Pid, syscall.SIGTERM)
		reaper.Wait()
		if t.Failed() || os.Getenv("OPENBRC_KEEP_LAB") != "" {
			t.Logf("lab work directory kept: %s", w)
			return
		}
		os.RemoveAll(w)
	})

	// DEBUG=400: the SD's "Loaded plugin: ..." goes to the director, which
	// it is not connected to at start-up; at debug level 400 it is also in
	// the SD's own output (log/bacula-sd.out).
	var upOut string
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(4)
		if err != nil {
			t.Fatal(err)
		}
		env = []string{"DIR_PORT=" + ports[0], "FD_PORT=" + ports[1], "SD_PORT=" + ports[2], "FD2_PORT=" + ports[3],
			"SRC_ROOT=" + filepath.Join(w, "src"), "PLUGIN_DIR=" + pluginDir, "BRC_REPLICA_SOCKET=" + socket, "BRC_REPLICA_SD_CONF=" + sdConf,
			"DEBUG=400", "FRESH=1"}
		upOut, err = run(3*time.Minute, env, filepath.Join(scripts, "up.sh"), w)
		if err == nil {
			break
		}
		if attempt == 3 { // port races with other labs, a slow start
			t.Fatalf("up.sh failed %d times, last: %v\n%s", attempt, err, upOut)
		}
		t.Logf("up.sh attempt %d failed (%v), retrying", attempt, err)
	}
	t.Logf("%s", strings.TrimSpace(upOut))
	sdPIDb, err := os.ReadFile(filepath.Join(w, "run", "sd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	sdPID, _ := strconv.Atoi(strings.TrimSpace(string(sdPIDb)))

	out, err := run(6*time.Minute, append(env, "JOB_TIMEOUT=300"), filepath.Join(scripts, "backup.sh"), w, "PlainMD5", "Full")
	if err != nil {
		t.Fatalf("backup.sh PlainMD5: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`backup\.sh: JobId=(\d+) job=`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("backup.sh: no JobId:\n%s", out)
	}
	jobID, _ := strconv.Atoi(m[1])
	unique, err := run(time.Minute, env, "sqlite3", filepath.Join(w, "working", "dir", "bacula.db"),
		fmt.Sprintf("select Job from Job where JobId=%d", jobID))
	unique = strings.TrimSpace(unique)
	if err != nil || unique == "" {
		t.Fatalf("unique Job name of JobId %d: %v %q", jobID, err, unique)
	}
	t.Logf("JobId %d, Job %s", jobID, unique)

	col.waitFor(t, sdevent.JobEnd, 10*time.Second)
	got := map[string]int{}
	for _, ev := range col.all() {
		switch {
		case ev.Type == sdevent.Loaded || ev.Type == sdevent.Unloaded:
			if ev.JobID != 0 || ev.PID != sdPID || ev.API != 12 || ev.Info != "bacula-sd" {
				t.Errorf("%+v: want JobId 0, the SD's PID %d, API 12, Info bacula-sd", ev, sdPID)
			}
		case ev.JobID != uint32(jobID) || ev.Job != unique || ev.PID != sdPID || ev.API != 12:
			t.Errorf("%+v: want JobId %d, Job %s, PID %d, API 12", ev, jobID, unique, sdPID)
		}
		got[ev.Type]++
	}
	for typ, n := range map[string]int{sdevent.Loaded: 1, sdevent.JobStart: 1, sdevent.JobEnd: 1} {
		if got[typ] != n {
			t.Errorf("%d %s events, want %d", got[typ], typ, n)
		}
	}
	if got[sdevent.DeviceOpen] < 1 || got[sdevent.DeviceClose] < 1 {
		t.Errorf("device events: %d open, %d close; want at least one each", got[sdevent.DeviceOpen], got[sdevent.DeviceClose])
	}
	evs := col.all()
	if evs[0].Type != sdevent.Loaded {
		t.Errorf("first event %+v, want %s", evs[0], sdevent.Loaded)
	}

	sdOut, _ := os.ReadFile(filepath.Join(w, "log", "bacula-sd.out"))
	if !bytes.Contains(sdOut, []byte("Loaded plugin: brc-replica-sd.so")) {
		t.Errorf("bacula-sd.out has no %q", "Loaded plugin: brc-replica-sd.so")
	}
	status, err := run(time.Minute, env, "bash", "-c", `. "$1/lib.sh"; printf 'status storage=File1\n' | bcon "$2" 30`, "bcon", scripts, w)
	if err != nil || !strings.Contains(status, "Plugin: brc-replica-sd.so(") {
		t.Errorf("status storage does not list the plugin (%v):\n%s", err, status)
	}
	jobLog, _ := os.ReadFile(filepath.Join(w, "log", "bacula.log"))
	if bytes.Contains(jobLog, []byte("not delivered to replicad")) {
		t.Errorf("drop report in the job log although replicad listened:\n%s", jobLog)
	}
	// The plugin's lines in the job log: notified at JobStart, the fake
	// replicad's summary at JobEnd.
	for _, want := range []string{
		"openbrc: replicad notified of job " + unique,
		"openbrc: /mnt/dr1: 54 files, 350273 bytes, 0 skipped, 0 failed, up to date",
		"openbrc: /mnt/dr2: 54 files, 350273 bytes, 0 skipped, 0 failed, 1 job behind",
	} {
		if !bytes.Contains(jobLog, []byte(want)) {
			t.Errorf("job log has no %q:\n%s", want, jobLog)
		}
	}
	if bytes.Contains(jobLog, []byte("openbrc: replicad unreachable")) || bytes.Contains(jobLog, []byte("no replication summary")) {
		t.Errorf("warnings in the job log although replicad listened:\n%s", jobLog)
	}
	for _, l := range strings.Split(string(jobLog), "\n") {
		if strings.Contains(l, fmt.Sprintf("JobId %d:", jobID)) && strings.Contains(l, "Termination:") && !strings.Contains(l, "Backup OK") {
			t.Errorf("job did not end OK: %s", l)
		}
	}

	// bls (a tool: it creates no plugin instances) loads the plugin from
	// its config's Plugin Directory and runs normally.
	blsConf, err := run(time.Minute, nil, "bash", "-c", `. "$1/lib.sh"; lab_tool_sdconf "$2" "$3"`, "sdconf",
		scripts, filepath.Join(w, "volumes"), filepath.Join(w, "tools"))
	if err != nil {
		t.Fatalf("lab_tool_sdconf: %v\n%s", err, blsConf)
	}
	blsConf = strings.TrimSpace(blsConf)
	conf, err := os.ReadFile(blsConf)
	if err != nil {
		t.Fatal(err)
	}
	conf = bytes.Replace(conf, []byte("Storage {\n"), []byte("Storage {\n  Plugin Directory = \""+pluginDir+"\"\n"), 1)
	if err := os.WriteFile(blsConf, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	vol := strings.TrimSpace(func() string {
		v, _ := run(time.Minute, nil, "sqlite3", filepath.Join(w, "working", "dir", "bacula.db"),
			fmt.Sprintf("select m.VolumeName from JobMedia jm join Media m on m.MediaId=jm.MediaId where jm.JobId=%d limit 1", jobID))
		return v
	}())
	blsOut, err := run(2*time.Minute, []string{"BRC_REPLICA_SOCKET=" + socket, "BRC_REPLICA_SD_CONF=" + sdConf}, "/usr/sbin/bls", "-c", blsConf, "-j", "-V", vol, "LabVolumes")
	if err != nil || !strings.Contains(blsOut, "Loaded plugin: brc-replica-sd.so") || !strings.Contains(blsOut, fmt.Sprintf("JobId=%d", jobID)) {
		t.Errorf("bls with the plugin (%v):\n%s", err, blsOut)
	}
	// bls exits without unloadPlugin: its plugin_loaded may or may not have
	// been sent by then. Nothing else may come from it.
	time.Sleep(500 * time.Millisecond)
	for _, ev := range col.all() {
		if ev.PID != sdPID && (ev.Type != sdevent.Loaded || ev.Info != "bls") {
			t.Errorf("event from bls (or another process): %+v", ev)
		}
	}

	// SIGTERM: the SD calls unloadPlugin, which flushes plugin_unloaded.
	downOut := down()
	stopped = true
	if strings.Contains(downOut, "sending KILL") {
		t.Errorf("a daemon ignored TERM:\n%s", downOut)
	}
	col.waitForFunc(t, "plugin_unloaded from the SD", 5*time.Second, func(ev sdevent.Event) bool {
		return ev.Type == sdevent.Unloaded && ev.PID == sdPID
	})
	for _, ev := range col.all() {
		t.Logf("event %s JobId=%d Job=%s PID=%d API=%d Info=%s", ev.Type, ev.JobID, ev.Job, ev.PID, ev.API, ev.Info)
	}
	col.mu.Lock()
	if len(col.errs) > 0 {
		t.Errorf("listener errors: %v", col.errs)
	}
	col.mu.Unlock()
}

func freePorts(n int) ([]string, error) {
	var ports []string
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	return ports, nil
}
