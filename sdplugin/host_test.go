package sdplugin_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openbrc/brc/internal/sdevent"
	"github.com/openbrc/brc/sdplugin"
)

// The host test builds brc-replica-sd.so with -buildmode=c-shared and a
// small C program (testdata/host.c) that plays bacula-sd: it dlopens the
// library, fills bsdInfo/bsdFuncs per the spec and drives loadPlugin,
// newPlugin, handlePluginEvent, freePlugin and unloadPlugin. It needs the
// go command with cgo and gcc; without them it skips, except under CI=true
// where it fails.

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found: the SD plugin host test needs it", name)
		}
		t.Skipf("%s not found: %v", name, err)
	}
	return p
}

// buildHost builds the plugin and the C host once per test binary.
func buildHost(t *testing.T) (so, host string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the SD plugin is for Linux")
	}
	gcc := needTool(t, "gcc")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = needTool(t, "go")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "brc-sdplugin-host-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		so := filepath.Join(dir, "brc-replica-sd.so")
		cmd := exec.Command(gobin, "build", "-buildmode=c-shared", "-o", so, "./examples/replica-sd")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build -buildmode=c-shared: %v\n%s", err, out)
			return
		}
		cmd = exec.Command(gcc, "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror",
			"-I.", "-o", filepath.Join(dir, "host"), "testdata/host.c", "-ldl")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("gcc testdata/host.c: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "brc-replica-sd.so"), filepath.Join(buildDir, "host")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// listen starts replicad's side of the socket and collects what arrives.
type collector struct {
	mu     sync.Mutex
	events []sdevent.Event
	errs   []error
}

func (c *collector) all() []sdevent.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	ev := slices.Clone(c.events)
	sort.SliceStable(ev, func(i, j int) bool { return ev[i].Time.Before(ev[j].Time) })
	return ev
}

func (c *collector) waitFor(t *testing.T, typ string, d time.Duration) {
	t.Helper()
	c.waitForFunc(t, typ, d, func(ev sdevent.Event) bool { return ev.Type == typ })
}

func (c *collector) waitForFunc(t *testing.T, what string, d time.Duration, ok func(sdevent.Event) bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if slices.ContainsFunc(c.all(), ok) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %s event within %s; got %+v", what, d, c.all())
}

func listen(t *testing.T) (string, *collector) {
	return listenReply(t, nil)
}

// listenReply is listen with an answer to requests (job_end with
// want_summary): reply returns it, or nil for none (the connection is
// closed). reply may block until the test ends.
func listenReply(t *testing.T, reply func(sdevent.Event) *sdevent.Reply) (string, *collector) {
	t.Helper()
	dir, err := os.MkdirTemp("", "brc-sock-") // short: sun_path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "replicad.sock")
	ln, err := sdevent.Listen(path, []uint32{uint32(os.Getuid())}, -1)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ln.ServeRequests(ctx, func(_ sdevent.Peer, ev sdevent.Event, answer func(sdevent.Reply) error) {
			c.mu.Lock()
			c.events = append(c.events, ev)
			c.mu.Unlock()
			if ev.WantSummary && reply != nil {
				if r := reply(ev); r != nil {
					answer(*r)
				}
			}
		}, func(_ sdevent.Peer, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err)
			c.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.errs) > 0 {
			t.Errorf("listener errors: %v", c.errs)
		}
	})
	return path, c
}

// summaryOf is a fake replicad's summary of a job: two targets.
func summaryOf(ev sdevent.Event) *sdevent.Reply {
	return &sdevent.Reply{JobID: ev.JobID, Job: ev.Job, Done: true, Targets: []sdevent.TargetSummary{
		{Name: "/mnt/dr1", Done: true, Files: 54, Bytes: 350273},
		{Name: "/mnt/dr2", Done: true, Files: 54, Bytes: 350273, JobsBehind: 1},
	}}
}

type hostRun struct {
	out   string
	lines []string
	pid   int
}

// runHost runs the host with the plugin's socket in BRC_REPLICA_SOCKET
// and conf as its configuration file (BRC_REPLICA_SD_CONF; "" for none:
// the real /etc/openbrc/replica-sd.conf is never read).
func runHost(t *testing.T, so, host, version, socket string, conf ...string) hostRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cf := filepath.Join(t.TempDir(), "replica-sd.conf")
	if len(conf) > 0 {
		if err := os.WriteFile(cf, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.CommandContext(ctx, host, so, version, "20")
	cmd.Env = append(os.Environ(), sdplugin.SocketEnv+"="+socket, sdplugin.ConfEnv+"="+cf)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	r := hostRun{out: out.String(), lines: strings.Split(strings.TrimSpace(out.String()), "\n")}
	if cmd.Process != nil {
		r.pid = cmd.Process.Pid
	}
	if err != nil {
		t.Fatalf("host %s: %v\n%s", version, err, r.out)
	}
	if !slices.Contains(r.lines, "done") {
		t.Fatalf("host %s did not finish:\n%s", version, r.out)
	}
	return r
}

// value returns the value of "key=value" lines.
func (r hostRun) value(t *testing.T, key string) string {
	t.Helper()
	for _, l := range r.lines {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v
		}
	}
	t.Fatalf("host printed no %s=:\n%s", key, r.out)
	return ""
}

func (r hostRun) matching(re string) []string {
	rx := regexp.MustCompile(re)
	var m []string
	for _, l := range r.lines {
		if rx.MatchString(l) {
			m = append(m, l)
		}
	}
	return m
}

var eventLine = regexp.MustCompile(`^event (\S+) (\d+) rc=(-?\d+) us=(\d+)$`)

// checkEvents: every handlePluginEvent returned bRC_OK, quickly.
func (r hostRun) checkEvents(t *testing.T, wantCalls int) {
	t.Helper()
	r.checkEventsFunc(t, wantCalls, func(who, id string) (string, time.Duration) { return "0", 200 * time.Millisecond })
}

// checkEventsFunc: each handlePluginEvent returned the rc want says, in at
// most the time it says.
func (r hostRun) checkEventsFunc(t *testing.T, wantCalls int, want func(who, id string) (rc string, max time.Duration)) {
	t.Helper()
	n := 0
	for _, l := range r.lines {
		m := eventLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n++
		rc, maxd := want(m[1], m[2])
		if m[3] != rc {
			t.Errorf("%s: want rc=%s", l, rc)
		}
		if us, _ := strconv.Atoi(m[4]); time.Duration(us)*time.Microsecond > maxd {
			t.Errorf("%s: handlePluginEvent took %d µs (at most %s)", l, us, maxd)
		}
	}
	if n != wantCalls {
		t.Errorf("%d handlePluginEvent calls, want %d:\n%s", n, wantCalls, r.out)
	}
}

const (
	jobA = "BackupA.2026-11-27_10.00.00_03"
	jobB = "BackupB.2026-11-27_10.00.01_04"
)

func TestHostLoadsPlugin(t *testing.T) {
	so, host := buildHost(t)
	for _, tc := range []struct{ version, license string }{{"12", "Bacula"}, {"13", "AGPLv3"}} {
		t.Run("v"+tc.version, func(t *testing.T) {
			socket, col := listenReply(t, summaryOf)
			r := runHost(t, so, host, tc.version, socket)
			for key, want := range map[string]string{
				"load rc":           "0",
				"info.size":         "56",
				"info.version":      tc.version,
				"info.magic":        "*BaculaSDPluginData*",
				"info.license":      tc.license,
				"funcs.size":        "56",
				"funcs.version":     tc.version,
				"funcs.global":      "null",
				"sdcheck":           "ok",
				"new system rc":     "0",
				"free system rc":    "0",
				"new A rc":          "0",
				"new B rc":          "0",
				"pcontext A":        "set",
				"pcontext distinct": "yes",
				"free A rc":         "0",
				"free B rc":         "0",
				"unload rc":         "0",
			} {
				if got := r.value(t, key); got != want {
					t.Errorf("%s = %q, want %q", key, got, want)
				}
			}
			r.checkEvents(t, 14)
			if reg := r.matching(`^register `); len(reg) != 3 || slices.ContainsFunc(reg, func(l string) bool { return l != "register ctx=set 1 2 4 6" }) {
				t.Errorf("registerBaculaEvents calls: %q, want 3 × events 1 2 4 6", reg)
			}
			// The job log: notified at JobStart, the summary at JobEnd.
			var wantMsgs []string
			for _, j := range []struct {
				id   int
				name string
			}{{42, jobA}, {43, jobB}} {
				pre := fmt.Sprintf("jobmsg ctx=set jobid=%d file=brc-replica-sd type=6 fmt=%%s text=openbrc: ", j.id)
				wantMsgs = append(wantMsgs, pre+"replicad notified of job "+j.name,
					pre+"/mnt/dr1: 54 files, 350273 bytes, 0 skipped, 0 failed, up to date",
					pre+"/mnt/dr2: 54 files, 350273 bytes, 0 skipped, 0 failed, 1 job behind")
			}
			msgs := r.matching(`^jobmsg `)
			sort.Strings(msgs)
			sort.Strings(wantMsgs)
			if !slices.Equal(msgs, wantMsgs) {
				t.Errorf("job messages with replicad listening:\n%s\nwant\n%s", strings.Join(msgs, "\n"), strings.Join(wantMsgs, "\n"))
			}
			for _, l := range r.matching(`^debugmsg `) {
				if !strings.Contains(l, " fmt=%s ") {
					t.Errorf("DebugMessage not called with format %%s: %s", l)
				}
			}

			col.waitFor(t, sdevent.Unloaded, 5*time.Second)
			evs := col.all()
			byJob := map[uint32][]string{}
			for _, ev := range evs {
				if ev.PID != r.pid {
					t.Errorf("%+v: PID %d, want the host's %d", ev, ev.PID, r.pid)
				}
				if want, _ := strconv.Atoi(tc.version); ev.API != want {
					t.Errorf("%+v: API %d, want %s", ev, ev.API, tc.version)
				}
				if ev.Time.IsZero() {
					t.Errorf("%+v: no time", ev)
				}
				switch ev.JobID {
				case 42:
					if ev.Job != jobA {
						t.Errorf("%+v: Job %q, want %q", ev, ev.Job, jobA)
					}
				case 43:
					if ev.Job != jobB {
						t.Errorf("%+v: Job %q, want %q", ev, ev.Job, jobB)
					}
				case 0:
					if ev.Type != sdevent.Loaded && ev.Type != sdevent.Unloaded {
						t.Errorf("event of a system JCR sent: %+v", ev)
					}
				default:
					t.Errorf("unexpected JobId: %+v", ev)
				}
				byJob[ev.JobID] = append(byJob[ev.JobID], ev.Type)
				if ev.Type == sdevent.JobEnd && (!ev.WantSummary || ev.WaitSecs != 30) {
					t.Errorf("%+v: want want_summary, wait_secs 30 (the default)", ev)
				}
			}
			if evs[0].Type != sdevent.Loaded || evs[len(evs)-1].Type != sdevent.Unloaded {
				t.Errorf("events do not start with %s and end with %s: %v", sdevent.Loaded, sdevent.Unloaded, evs)
			}
			if !strings.HasPrefix(evs[0].Info, "host") {
				t.Errorf("plugin_loaded Info %q, want the program name", evs[0].Info)
			}
			wantA := []string{sdevent.JobStart, sdevent.DeviceOpen, sdevent.DeviceClose, sdevent.DeviceClose, sdevent.JobEnd}
			wantB := []string{sdevent.JobStart, sdevent.DeviceOpen, sdevent.DeviceClose, sdevent.JobEnd}
			if !slices.Equal(byJob[42], wantA) {
				t.Errorf("JobId 42 events %v, want %v", byJob[42], wantA)
			}
			if !slices.Equal(byJob[43], wantB) {
				t.Errorf("JobId 43 events %v, want %v", byJob[43], wantB)
			}
			if t.Failed() {
				t.Logf("host output:\n%s\nevents: %+v", r.out, evs)
			}
		})
	}
}

func TestHostRefusesOtherVersions(t *testing.T) {
	so, host := buildHost(t)
	for _, v := range []string{"14", "11", "1"} {
		t.Run("v"+v, func(t *testing.T) {
			socket, col := listen(t)
			r := runHost(t, so, host, v, socket)
			if rc := r.value(t, "load rc"); rc == "0" {
				t.Fatalf("loadPlugin accepted interface %s:\n%s", v, r.out)
			}
			if rc := r.value(t, "unload rc"); rc != "0" {
				t.Errorf("unloadPlugin after a refused load: rc=%s", rc)
			}
			time.Sleep(300 * time.Millisecond)
			if evs := col.all(); len(evs) != 0 {
				t.Errorf("a refused plugin sent events: %v", evs)
			}
		})
	}
}

// Without replicad, events are dropped without delaying the SD; the job
// log says replicad is unreachable (M_WARNING) at JobStart and that there
// is no summary at JobEnd, and one job message (M_INFO) reports the
// dropped events.
func TestHostWithoutReplicad(t *testing.T) {
	so, host := buildHost(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "missing", "replicad.sock")
	r := runHost(t, so, host, "12", sock)
	if rc := r.value(t, "load rc"); rc != "0" {
		t.Fatalf("load rc=%s\n%s", rc, r.out)
	}
	r.checkEvents(t, 14)
	pre := "jobmsg ctx=set jobid=%d file=brc-replica-sd type=5 fmt=%%s text=openbrc: "
	for _, id := range []int{42, 43} {
		for _, want := range []string{
			fmt.Sprintf(pre, id) + "replicad unreachable at " + sock + ": sdevent: dial unix " + sock + ": connect: no such file or directory",
			fmt.Sprintf(pre, id) + "no replication summary for job ",
		} {
			if m := r.matching("^" + regexp.QuoteMeta(want)); len(m) != 1 {
				t.Errorf("want one %q in the job log, got %q", want, m)
			}
		}
	}
	reports := r.matching(`^jobmsg .* type=6 .*not delivered to replicad`)
	if len(reports) != 1 {
		t.Fatalf("want exactly 1 drop report (at most one a minute), got %q\n%s", reports, r.out)
	}
	if !strings.HasPrefix(reports[0], "jobmsg ctx=set jobid=42 file=brc-replica-sd type=6 fmt=%s text=brc-replica-sd: ") {
		t.Errorf("drop report: %s", reports[0])
	}
	if n := len(r.matching(`^jobmsg `)); n != 5 {
		t.Errorf("%d job messages, want 5:\n%s", n, r.out)
	}
	if rc := r.value(t, "unload rc"); rc != "0" {
		t.Errorf("unload rc=%s", rc)
	}
}

// require_replica=yes: without replicad, the DeviceOpen of a job returns
// bRC_Error (the SD fails the job), with an M_ERROR job message; that of
// the system JCR does not. With replicad, it returns bRC_OK.
func TestHostRequireReplica(t *testing.T) {
	so, host := buildHost(t)
	t.Run("unreachable", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "replicad.sock")
		r := runHost(t, so, host, "13", sock, "# test", "require_replica = yes", "summary_wait = 0")
		r.checkEventsFunc(t, 14, func(who, id string) (string, time.Duration) {
			if id == "4" && (who == "A" || who == "B") {
				return "2", 2500 * time.Millisecond
			}
			return "0", 200 * time.Millisecond
		})
		for _, id := range []int{42, 43} {
			want := fmt.Sprintf("^jobmsg ctx=set jobid=%d file=brc-replica-sd type=4 fmt=%%s text=openbrc: require_replica=yes \\(.*replica-sd.conf\\) and replicad is unreachable at %s: .*the job fails$", id, regexp.QuoteMeta(sock))
			if m := r.matching(want); len(m) != 1 {
				t.Errorf("no %s in:\n%s", want, r.out)
			}
		}
	})
	t.Run("listening", func(t *testing.T) {
		sock, col := listen(t)
		r := runHost(t, so, host, "13", sock, "require_replica = yes", "summary_wait = 0")
		r.checkEvents(t, 14)
		if m := r.matching(`^jobmsg .*type=[45] `); len(m) != 0 {
			t.Errorf("warnings or errors with replicad listening: %q", m)
		}
		col.waitFor(t, sdevent.Unloaded, 5*time.Second)
		n := 0
		for _, ev := range col.all() {
			if ev.Type == sdevent.DeviceOpen {
				n++
			}
		}
		if n != 2 {
			t.Errorf("%d device_open events, want 2", n)
		}
	})
}

// A replicad that takes the request and never answers: JobEnd returns
// after summary_wait (+ the margin), well within summary_wait+1s, and the
// job log says there is no summary. Unknown keys of the configuration file
// are reported in the job log.
func TestHostSummaryTimeout(t *testing.T) {
	so, host := buildHost(t)
	release := make(chan struct{})
	sock, _ := listenReply(t, func(sdevent.Event) *sdevent.Reply { <-release; return nil })
	t.Cleanup(func() { close(release) }) // before the listener's cleanup
	r := runHost(t, so, host, "12", sock, "summary_wait = 1", "frobnicate = yes")
	r.checkEventsFunc(t, 14, func(who, id string) (string, time.Duration) {
		if id == "2" && (who == "A" || who == "B") {
			return "0", 2 * time.Second
		}
		return "0", 200 * time.Millisecond
	})
	for _, l := range r.lines {
		if m := eventLine.FindStringSubmatch(l); m != nil && m[2] == "2" && m[1] != "system" {
			if us, _ := strconv.Atoi(m[4]); us < 900_000 {
				t.Errorf("%s: JobEnd returned before summary_wait", l)
			}
		}
	}
	for _, id := range []int{42, 43} {
		want := fmt.Sprintf("^jobmsg ctx=set jobid=%d file=brc-replica-sd type=5 fmt=%%s text=openbrc: no replication summary for job .*: sdevent: no reply within 1.5s$", id)
		if m := r.matching(want); len(m) != 1 {
			t.Errorf("no %s in:\n%s", want, r.out)
		}
	}
	if m := r.matching(`^jobmsg ctx=set jobid=42 .*type=5 .*text=openbrc: configuration: .*replica-sd.conf:2: unknown key "frobnicate": ignored$`); len(m) != 1 {
		t.Errorf("no warning about the unknown key:\n%s", r.out)
	}
}
