//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// treeSize is make-tree.sh's SIZE: the big random file of the trees. With
// 1M the tree has 141 paths, ~13.5 MB apparent (10 MiB of it sparse files).
const treeSize = "1M"

// Lab knobs passed to up.sh.
const (
	spanVolumeBytes = "5M"      // job TreeSpan (~13.4 MB) spans 3 volumes
	multiBandwidth  = "200kb/s" // InterleaveA/B: ~1.9 MB on the wire (comm line compression) -> ~10 s each, so that they overlap
	jobTimeout      = "300"     // backup.sh JOB_TIMEOUT
	cmdTimeout      = 6 * time.Minute
)

// lab is the running Bacula lab shared by all tests (set up by TestMain).
var (
	lab    *labEnv
	labErr error
)

type labEnv struct {
	repo     string // module root
	scripts  string // scripts/lab
	work     string // WORKDIR of up.sh
	src      string // SRC_ROOT
	out      string // extraction scratch
	replicad string // built binary
	ports    [4]int // dir fd sd fd2
	reaper   *exec.Cmd
	stage    map[string]int // make-tree stage of SRC_ROOT/<tree> (0: unknown/custom)
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) (code int) {
	start := time.Now()
	lab, labErr = setupLab()
	if labErr != nil {
		fmt.Fprintf(os.Stderr, "integration: LAB SETUP FAILED: %v\n", labErr)
	}
	defer func() {
		if lab != nil {
			lab.teardown(code != 0)
		}
		fmt.Printf("integration: total wall time %s\n", time.Since(start).Round(100*time.Millisecond))
	}()
	return m.Run()
}

// needLab returns the lab or fails the test with the setup error.
func needLab(t *testing.T) *labEnv {
	t.Helper()
	if labErr != nil {
		t.Fatalf("integration lab not available (prerequisites: root, Bacula 9.6 from scripts/lab/install.sh, bash, sqlite3, openssl, acl, attr, coreutils): %v", labErr)
	}
	return lab
}

func setupLab() (*labEnv, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("the integration tests need Linux, not %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the integration tests must run as root (the lab chowns, mknods and sets trusted.* xattrs; Bacula restores owners)")
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(repo, "go.mod")); err != nil {
		return nil, fmt.Errorf("module root not found from %s: %v", repo, err)
	}
	l := &labEnv{repo: repo, scripts: filepath.Join(repo, "scripts", "lab"), stage: map[string]int{}}
	var missing []string
	for _, f := range []string{"/usr/sbin/bacula-dir", "/usr/sbin/bacula-sd", "/usr/sbin/bacula-fd",
		"/usr/sbin/bconsole", "/usr/sbin/bextract", "/usr/sbin/bls",
		"/usr/share/bacula-director/make_sqlite3_tables"} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	for _, c := range []string{"bash", "sqlite3", "openssl", "setfacl", "setfattr", "mkfifo", "mknod",
		"numfmt", "timeout", "setsid", "sha256sum", "truncate", "dd", "od", "seq"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	for _, s := range []string{"up.sh", "down.sh", "backup.sh", "extract.sh", "make-tree.sh", "lib.sh"} {
		if _, err := os.Stat(filepath.Join(l.scripts, s)); err != nil {
			missing = append(missing, filepath.Join(l.scripts, s))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing prerequisites: %s (run scripts/lab/install.sh as root)", strings.Join(missing, ", "))
	}

	w, err := os.MkdirTemp("", "openbrc-integration-")
	if err != nil {
		return nil, err
	}
	if w, err = filepath.EvalSymlinks(w); err != nil {
		return nil, err
	}
	l.work, l.src, l.out = w, filepath.Join(w, "src"), filepath.Join(w, "out")
	for _, d := range []string{l.src, l.out, filepath.Join(w, "bin"), filepath.Join(w, "log")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return l, err
		}
	}
	fmt.Printf("integration: lab work directory %s\n", w)

	t0 := time.Now()
	l.replicad = filepath.Join(w, "bin", "replicad")
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go") // go test's own toolchain
	}
	if out, err := l.command(gobin, []string{"build", "-o", l.replicad, "./examples/replicad"}, nil, repo); err != nil {
		return l, fmt.Errorf("go build ./examples/replicad: %v\n%s", err, out)
	}
	fmt.Printf("integration: built replicad in %s\n", time.Since(t0).Round(10*time.Millisecond))

	// The daemons detach (setsid): should this process die (panic, timeout,
	// signal) a watchdog of its own session still runs down.sh.
	l.reaper = exec.Command("bash", "-c", `while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2/down.sh" "$3"`,
		"openbrc-lab-reaper", strconv.Itoa(os.Getpid()), l.scripts, w)
	l.reaper.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	lf, err := os.Create(filepath.Join(w, "reaper.log")) // not in log/: up.sh FRESH=1 wipes it
	if err != nil {
		return l, err
	}
	l.reaper.Stdout, l.reaper.Stderr = lf, lf
	err = l.reaper.Start()
	lf.Close()
	if err != nil {
		return l, fmt.Errorf("start watchdog: %v", err)
	}

	t0 = time.Now()
	var upOut string
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(4)
		if err != nil {
			return l, err
		}
		copy(l.ports[:], ports)
		// FRESH=1: a failed attempt stops its daemons, but leaves a catalog.
		upOut, err = l.script("up.sh", []string{"FRESH=1"}, w)
		if err == nil {
			break
		}
		// Retried: besides port races, up.sh can misreport a daemon as
		// dead when it checks /proc/PID/cmdline before the forked shell
		// has exec'ed the daemon (seen on a loaded 2-CPU machine).
		if attempt == 3 {
			return l, fmt.Errorf("scripts/lab/up.sh failed %d times, last: %v\n%s", attempt, err, upOut)
		}
		fmt.Printf("integration: up.sh attempt %d failed (%v), retrying:\n%s", attempt, err, indent(tail(upOut, 8)))
	}
	fmt.Printf("integration: lab up in %s on 127.0.0.1 ports dir=%d fd=%d sd=%d fd2=%d\n",
		time.Since(t0).Round(10*time.Millisecond), l.ports[0], l.ports[1], l.ports[2], l.ports[3])
	return l, nil
}

func (l *labEnv) upEnv() []string {
	return []string{
		"DIR_PORT=" + strconv.Itoa(l.ports[0]), "FD_PORT=" + strconv.Itoa(l.ports[1]),
		"SD_PORT=" + strconv.Itoa(l.ports[2]), "FD2_PORT=" + strconv.Itoa(l.ports[3]),
		"SRC_ROOT=" + l.src, "SPAN_VOLUME_BYTES=" + spanVolumeBytes, "MULTI_BANDWIDTH=" + multiBandwidth,
	}
}

func (l *labEnv) teardown(failed bool) {
	if l.work == "" {
		return
	}
	if out, err := l.script("down.sh", l.upEnv(), l.work); err != nil {
		fmt.Fprintf(os.Stderr, "integration: down.sh: %v\n%s", err, out)
		failed = true
	} else {
		fmt.Print(indent(out))
	}
	if l.reaper != nil && l.reaper.Process != nil {
		_ = syscall.Kill(-l.reaper.Process.Pid, syscall.SIGTERM) // its own process group (setsid)
		_ = l.reaper.Wait()
	}
	if failed || os.Getenv("OPENBRC_KEEP_LAB") != "" {
		fmt.Printf("integration: lab work directory kept: %s\n", l.work)
		return
	}
	if err := os.RemoveAll(l.work); err != nil {
		fmt.Fprintf(os.Stderr, "integration: remove %s: %v\n", l.work, err)
	}
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}

// freePorts returns n distinct TCP ports free on 127.0.0.1 right now.
func freePorts(n int) ([]int, error) {
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// command runs name args in dir with extra environment and returns its
// combined output.
func (l *labEnv) command(name string, args, env []string, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%v (timeout %s)", err, cmdTimeout)
	}
	return buf.String(), err
}

// script runs scripts/lab/NAME with the lab's ports in the environment.
func (l *labEnv) script(name string, env []string, args ...string) (string, error) {
	return l.command(filepath.Join(l.scripts, name), args, append(l.upEnv(), env...), l.work)
}

// sql queries the lab catalog with lib.sh's lab_sql.
func (l *labEnv) sql(t *testing.T, q string) string {
	t.Helper()
	out, err := l.command("bash", []string{"-c", `. "$1/lib.sh"; lab_sql "$2" "$3"`, "lab_sql", l.scripts, l.work, q}, l.upEnv(), l.work)
	if err != nil {
		t.Fatalf("catalog query %q: %v\n%s", q, err, out)
	}
	return strings.TrimSpace(out)
}

// bconsole sends commands to the lab director with lib.sh's bcon.
func (l *labEnv) bconsole(t *testing.T, cmds string) string {
	t.Helper()
	out, err := l.command("bash", []string{"-c", `. "$1/lib.sh"; printf '%s\n' "$3" | bcon "$2" 30`, "bcon", l.scripts, l.work, cmds}, l.upEnv(), l.work)
	if err != nil {
		t.Fatalf("bconsole %q: %v\n%s", cmds, err, out)
	}
	return out
}

// ensureTree makes SRC_ROOT/name a pristine make-tree.sh stage-1 tree.
func (l *labEnv) ensureTree(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(l.src, name)
	if l.stage[name] != 1 {
		l.makeTree(t, name, 1)
	}
	return dir
}

// makeTree runs make-tree.sh on SRC_ROOT/name (stage 1 wipes it first).
func (l *labEnv) makeTree(t *testing.T, name string, stage int) {
	t.Helper()
	dir := filepath.Join(l.src, name)
	l.stage[name] = 0
	out, err := l.script("make-tree.sh", nil, dir, strconv.Itoa(stage), treeSize)
	if err != nil {
		t.Fatalf("make-tree.sh %s %d: %v\n%s", dir, stage, err, out)
	}
	if stage == 1 && !strings.Contains(out, "(xattr=1 acl=1)") {
		t.Fatalf("make-tree.sh: the file system of %s lacks xattr or ACL support (needed for the ACL/xattr option sets):\n%s", dir, out)
	}
	l.stage[name] = stage
	t.Logf("%s", strings.TrimSpace(out))
}

// job is a finished backup job, as recorded in the catalog.
type job struct {
	ID     int
	Name   string
	Level  string // F I D
	Status string
	Files  int
	Bytes  int64
	Vols   []string // in writing order
	VolDir string
	BSR    string
}

func (j job) volPaths() []string {
	var p []string
	for _, v := range j.Vols {
		p = append(p, filepath.Join(j.VolDir, v))
	}
	return p
}

func (j job) String() string {
	return fmt.Sprintf("job %d %s level=%s files=%d bytes=%d volumes=%v", j.ID, j.Name, j.Level, j.Files, j.Bytes, j.Vols)
}

var jobIDRe = regexp.MustCompile(`backup\.sh: JobId=(\d+) job=`)

// backup runs scripts/lab/backup.sh JOB LEVEL and returns the job.
func (l *labEnv) backup(t *testing.T, name, level string) job {
	t.Helper()
	t0 := time.Now()
	id, out, err := l.runBackup(name, level)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	j := l.jobInfo(t, id)
	if j.Status != "T" {
		t.Fatalf("%s: JobStatus %s, want T\n%s", j, j.Status, out)
	}
	t.Logf("backup %s %s: %s (%s)", name, level, j, time.Since(t0).Round(100*time.Millisecond))
	return j
}

// runBackup runs backup.sh (safe to call from any goroutine) and returns
// the JobId and the script's output.
func (l *labEnv) runBackup(name, level string) (int, string, error) {
	out, err := l.script("backup.sh", []string{"JOB_TIMEOUT=" + jobTimeout}, l.work, name, level)
	if err != nil {
		return 0, out, fmt.Errorf("backup.sh %s %s: %v", name, level, err)
	}
	m := jobIDRe.FindStringSubmatch(out)
	if m == nil {
		return 0, out, fmt.Errorf("backup.sh %s: no JobId in output", name)
	}
	id, _ := strconv.Atoi(m[1])
	return id, out, nil
}

// jobInfo reads a job and its volumes from the catalog.
func (l *labEnv) jobInfo(t *testing.T, id int) job {
	t.Helper()
	row := strings.Split(l.sql(t, fmt.Sprintf("select Name, Level, JobStatus, JobFiles, JobBytes from Job where JobId=%d", id)), "|")
	if len(row) != 5 {
		t.Fatalf("job %d not in the catalog: %q", id, row)
	}
	j := job{ID: id, Name: row[0], Level: row[1], Status: row[2]}
	j.Files, _ = strconv.Atoi(row[3])
	j.Bytes, _ = strconv.ParseInt(row[4], 10, 64)
	vols := l.sql(t, fmt.Sprintf("select m.VolumeName, m.MediaType from JobMedia jm join Media m on m.MediaId=jm.MediaId where jm.JobId=%d group by m.VolumeName order by min(jm.JobMediaId)", id))
	for _, line := range strings.Split(vols, "\n") {
		if line == "" {
			continue
		}
		name, mt, _ := strings.Cut(line, "|")
		dir := map[string]string{"File1": "volumes", "Small1": "volumes-small", "Fifo1": "fifo-out"}[mt]
		if dir == "" {
			t.Fatalf("job %d: volume %s has unknown media type %q", id, name, mt)
		}
		if j.VolDir != "" && j.VolDir != filepath.Join(l.work, dir) {
			t.Fatalf("job %d: volumes on several devices", id)
		}
		j.VolDir = filepath.Join(l.work, dir)
		j.Vols = append(j.Vols, name)
	}
	if len(j.Vols) == 0 {
		t.Fatalf("job %d: no volumes in the catalog", id)
	}
	for _, p := range j.volPaths() {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("job %d: volume file: %v", id, err)
		}
	}
	j.BSR = filepath.Join(l.work, "bsr", fmt.Sprintf("%s-%d.bsr", j.Name, id))
	return j
}

// outDir returns a fresh extraction directory, removed after the test if
// it passed.
func (l *labEnv) outDir(t *testing.T, name string) string {
	t.Helper()
	base := regexp.MustCompile(`[^A-Za-z0-9._-]+`).ReplaceAllString(t.Name(), "_")
	d := filepath.Join(l.out, base, name)
	if err := os.RemoveAll(d); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv("OPENBRC_KEEP_LAB") == "" {
			os.RemoveAll(d)
		}
	})
	return d
}

// bextractResult is a run of scripts/lab/extract.sh.
type bextractResult struct {
	Output   string
	Restored int            // "N files restored."
	Unknown  map[string]int // stream -> "Unknown stream=N ignored" count
	Errors   []string       // other "Error:" lines
}

var (
	restoredRe = regexp.MustCompile(`(?m)^(\d+) files restored\.`)
	unknownRe  = regexp.MustCompile(`Error: Unknown stream=(\d+) ignored`)
)

// bextract restores vols (file names in dir, in order) into out with
// Bacula's bextract (scripts/lab/extract.sh), with bootstrap bsr if set.
func (l *labEnv) bextract(t *testing.T, dir, out string, vols []string, bsr string) bextractResult {
	t.Helper()
	env := []string{"BSR=" + bsr}
	o, err := l.script("extract.sh", env, append([]string{dir, out}, vols...)...)
	if werr := os.WriteFile(out+".bextract.log", []byte(o), 0o644); werr != nil {
		t.Log(werr)
	}
	if err != nil {
		t.Fatalf("extract.sh %s %v (BSR=%s): %v\n%s", dir, vols, bsr, err, tail(o, 40))
	}
	r := bextractResult{Output: o, Unknown: map[string]int{}}
	if m := restoredRe.FindStringSubmatch(o); m != nil {
		r.Restored, _ = strconv.Atoi(m[1])
	} else {
		t.Fatalf("extract.sh: no 'files restored' line:\n%s", tail(o, 40))
	}
	sc := bufio.NewScanner(strings.NewReader(o))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := unknownRe.FindStringSubmatch(line); m != nil {
			r.Unknown[m[1]]++
		} else if strings.Contains(line, "bextract JobId 0: Error:") {
			r.Errors = append(r.Errors, line)
		}
	}
	return r
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// replicadResult is a run of "replicad extract".
type replicadResult struct {
	Exit   int
	Stdout string
	Stderr string
	Sum    summary
}

// summary is the parsed report replicad extract prints on stdout.
type summary struct {
	Jobs, JobsOK, JobsUnfinished                                  int
	Regular, Dirs, Symlinks, HardLinks, Special, Deleted, Skipped int
	Bytes, Holes                                                  int64
	DigestsChecked, DigestMismatches                              int
	NotDecoded                                                    string
	Errors, Notices, Incomplete, Warnings                         int
}

func (s summary) entries() int { return s.Regular + s.Dirs + s.Symlinks + s.HardLinks + s.Special }

var sumRes = []*regexp.Regexp{
	regexp.MustCompile(`(?m)^jobs: (\d+) \((\d+) ended OK, (\d+) unfinished`),
	regexp.MustCompile(`(?m)^files: (\d+) regular, (\d+) directories, (\d+) symlinks, (\d+) hard links, (\d+) special; (\d+) deleted, (\d+) skipped`),
	regexp.MustCompile(`(?m)^bytes: (\d+) \((\d+) left as holes\)`),
	regexp.MustCompile(`(?m)^digests: (\d+) checked, (\d+) mismatched`),
	regexp.MustCompile(`(?m)^problems: (\d+) errors, (\d+) reader notices, (\d+) incomplete files, (\d+) warnings`),
}

func parseSummary(out string) (summary, error) {
	var s summary
	targets := [][]any{
		{&s.Jobs, &s.JobsOK, &s.JobsUnfinished},
		{&s.Regular, &s.Dirs, &s.Symlinks, &s.HardLinks, &s.Special, &s.Deleted, &s.Skipped},
		{&s.Bytes, &s.Holes},
		{&s.DigestsChecked, &s.DigestMismatches},
		{&s.Errors, &s.Notices, &s.Incomplete, &s.Warnings},
	}
	for i, re := range sumRes {
		m := re.FindStringSubmatch(out)
		if m == nil {
			return s, fmt.Errorf("summary line %q not found in:\n%s", re, out)
		}
		for k, p := range targets[i] {
			v, _ := strconv.ParseInt(m[k+1], 10, 64)
			switch p := p.(type) {
			case *int:
				*p = int(v)
			case *int64:
				*p = v
			}
		}
	}
	if m := regexp.MustCompile(`(?m)^streams not decoded: (.*)$`).FindStringSubmatch(out); m != nil {
		s.NotDecoded = m[1]
	}
	return s, nil
}

// replicadRun runs "replicad extract -q -o out ARGS..." and parses its
// summary; it does not judge the exit status.
func (l *labEnv) replicadRun(t *testing.T, out string, args ...string) replicadResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.replicad, append([]string{"extract", "-q", "-o", out}, args...)...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := replicadResult{Stdout: so.String(), Stderr: se.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Exit = ee.ExitCode()
	default:
		t.Fatalf("replicad extract %v: %v", args, err)
	}
	s, perr := parseSummary(r.Stdout)
	if perr != nil {
		t.Fatalf("replicad extract %v (exit %d): %v\nstderr:\n%s", args, r.Exit, perr, tail(r.Stderr, 30))
	}
	r.Sum = s
	return r
}

// replicadOK is replicadRun for runs that must succeed without any
// problem reported.
func (l *labEnv) replicadOK(t *testing.T, out string, args ...string) summary {
	t.Helper()
	r := l.replicadRun(t, out, args...)
	s := r.Sum
	if r.Exit != 0 || s.Errors+s.Notices+s.Incomplete+s.Warnings+s.DigestMismatches != 0 || s.JobsUnfinished != 0 || s.NotDecoded != "none" {
		t.Fatalf("replicad extract %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.Exit, r.Stdout, tail(r.Stderr, 40))
	}
	return s
}

// lsResult is the parsed output of "replicad ls -json".
type lsResult struct {
	Lines   int
	Volumes []string
	Files   map[uint32]int    // file records per JobId
	JobEnd  map[uint32]uint32 // job_files of the EOS label per JobId
	Records []lsFile          // the file records, in order
	Notices []string
}

type lsFile struct {
	JobID uint32
	Path  string // as recorded: absolute, directories with a trailing "/"
	Type  string // FT_REG, FT_DIREND, FT_DELETED ...
}

// paths returns the recorded paths of job id's records of the given
// types (all types if none), in order.
func (r lsResult) paths(id uint32, types ...string) []string {
	var p []string
	for _, f := range r.Records {
		if f.JobID == id && (len(types) == 0 || slices.Contains(types, f.Type)) {
			p = append(p, f.Path)
		}
	}
	return p
}

// lsJSON runs "replicad ls -json" on vols and checks every line is a JSON
// object of a known kind, and that there is no notice.
func (l *labEnv) lsJSON(t *testing.T, vols ...string) lsResult {
	t.Helper()
	return l.lsJSONNotices(t, false, vols...)
}

// lsJSONNotices is lsJSON; with notices, "notice" lines are collected
// (r.Notices) instead of failing the test.
func (l *labEnv) lsJSONNotices(t *testing.T, notices bool, vols ...string) lsResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.replicad, append([]string{"ls", "-json"}, vols...)...)
	var se bytes.Buffer
	cmd.Stderr = &se
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("replicad ls -json %v: %v\n%s", vols, err, se.String())
	}
	r := lsResult{Files: map[uint32]int{}, JobEnd: map[uint32]uint32{}}
	for i, line := range bytes.Split(bytes.TrimRight(out, "\n"), []byte("\n")) {
		var o struct {
			Kind     string  `json:"kind"`
			Name     string  `json:"name"`
			JobID    uint32  `json:"jobid"`
			Path     string  `json:"path"`
			Type     string  `json:"type"`
			JobFiles *uint32 `json:"job_files"`
			Text     string  `json:"text"`
		}
		var generic map[string]any
		if err := json.Unmarshal(line, &generic); err != nil {
			t.Fatalf("replicad ls -json %v: line %d is not JSON: %v: %q", vols, i+1, err, line)
		}
		if err := json.Unmarshal(line, &o); err != nil {
			t.Fatalf("replicad ls -json: line %d: %v", i+1, err)
		}
		r.Lines++
		switch o.Kind {
		case "volume":
			r.Volumes = append(r.Volumes, o.Name)
		case "job":
		case "file":
			r.Files[o.JobID]++
			r.Records = append(r.Records, lsFile{o.JobID, o.Path, o.Type})
		case "job-end":
			if o.JobFiles != nil {
				r.JobEnd[o.JobID] = *o.JobFiles
			}
		case "notice":
			r.Notices = append(r.Notices, o.Text)
			if !notices {
				t.Errorf("replicad ls -json %v: notice: %s", vols, o.Text)
			}
		default:
			t.Fatalf("replicad ls -json %v: line %d: unknown kind %q", vols, i+1, o.Kind)
		}
	}
	return r
}

// checkLs checks that "replicad ls -json" on the job's volumes lists as
// many files as the catalog's JobFiles (and the job's EOS label says so).
func (l *labEnv) checkLs(t *testing.T, j job) lsResult {
	t.Helper()
	r := l.lsJSON(t, j.volPaths()...)
	id := uint32(j.ID)
	if r.Files[id] != j.Files {
		t.Errorf("replicad ls -json %v: %d file lines for job %d, catalog JobFiles=%d", j.Vols, r.Files[id], j.ID, j.Files)
	}
	if r.JobEnd[id] != uint32(j.Files) {
		t.Errorf("replicad ls -json %v: job-end job_files=%d for job %d, catalog JobFiles=%d", j.Vols, r.JobEnd[id], j.ID, j.Files)
	}
	if len(r.Volumes) != len(j.Vols) {
		t.Errorf("replicad ls -json %v: %d volume labels, want %d", j.Vols, len(r.Volumes), len(j.Vols))
	}
	t.Logf("ls -json %v: %d JSON lines, %d files of job %d (catalog JobFiles %d)", j.Vols, r.Lines, r.Files[id], j.ID, j.Files)
	return r
}
