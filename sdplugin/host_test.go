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
		ln.Serve(ctx, func(_ sdevent.Peer, ev sdevent.Event) {
			c.mu.Lock()
			c.events = append(c.events, ev)
			c.mu.Unlock()
		}, func(_ sdevent.Peer, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err)
			c.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if len(c.errs) > 0 {
			t.Errorf("listener errors: %v", c.errs)
		}
	})
	return path, c
}

type hostRun struct {
	out   string
	lines []string
	pid   int
}

func runHost(t *testing.T, so, host, version, socket string) hostRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, host, so, version, "20")
	cmd.Env = append(os.Environ(), "BRC_PLUGIN_SOCKET="+socket)
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
	n := 0
	for _, l := range r.lines {
		m := eventLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n++
		if m[3] != "0" {
			t.Errorf("%s: want rc=0 (the plugin never vetoes)", l)
		}
		if us, _ := strconv.Atoi(m[4]); us > 200_000 {
			t.Errorf("%s: handlePluginEvent took %d µs", l, us)
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
			socket, col := listen(t)
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
			if msgs := r.matching(`^jobmsg `); len(msgs) != 0 {
				t.Errorf("job messages with replicad listening: %q", msgs)
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

// Without replicad, events are dropped without delaying the SD, and one
// job message (M_INFO) says so.
func TestHostWithoutReplicad(t *testing.T) {
	so, host := buildHost(t)
	dir := t.TempDir()
	r := runHost(t, so, host, "12", filepath.Join(dir, "missing", "replicad.sock"))
	if rc := r.value(t, "load rc"); rc != "0" {
		t.Fatalf("load rc=%s\n%s", rc, r.out)
	}
	r.checkEvents(t, 14)
	msgs := r.matching(`^jobmsg `)
	if len(msgs) != 1 {
		t.Fatalf("want exactly 1 drop report (at most one a minute), got %q\n%s", msgs, r.out)
	}
	if !strings.HasPrefix(msgs[0], "jobmsg ctx=set file=brc-replica-sd type=6 fmt=%s text=brc-replica-sd: ") ||
		!strings.Contains(msgs[0], "not delivered to replicad") {
		t.Errorf("drop report: %s", msgs[0])
	}
	if rc := r.value(t, "unload rc"); rc != "0" {
		t.Errorf("unload rc=%s", rc)
	}
}
