package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "replicad-test")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "replicad")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const fixtures = "../../bacularec/testdata"

// replicad runs the command and returns stdout, stderr and the exit code.
func replicad(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), errb.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

func sha(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestExtract(t *testing.T) {
	out := t.TempDir()
	stdout, stderr, code := replicad(t, "extract", "-o", out, filepath.Join(fixtures, "bacula-9.6.7-plain-md5.vol"))
	if code != 0 || !strings.Contains(stdout, "digests: 29 checked, 0 mismatched") || !strings.Contains(stdout, "1 ended OK") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	// Same bytes as the tree Bacula backed up (testdata/trees/plain.tsv).
	got := sha(t, filepath.Join(out, "tmp/brc-fixture-src/plain/data/exactly-65536.bin"))
	manifest, _ := os.ReadFile(filepath.Join(fixtures, "trees", "plain.tsv"))
	if !strings.Contains(string(manifest), "\"data/exactly-65536.bin\"\treg\t0644\t0\t0\t65536\t") || !strings.Contains(string(manifest), got) {
		t.Fatalf("content sha256 %s not in the manifest", got)
	}
}

func TestExtractSpanAndJobFilter(t *testing.T) {
	out := t.TempDir()
	stdout, _, code := replicad(t, "extract", "-o", out, filepath.Join(fixtures, "bacula-9.6.7-span.1.vol"), filepath.Join(fixtures, "bacula-9.6.7-span.2.vol"))
	if code != 0 || !strings.Contains(stdout, "jobs: 1 (1 ended OK") {
		t.Fatalf("span: exit %d\n%s", code, stdout)
	}
	// The second volume alone: the job's start and the beginning of a
	// split record are missing, which is reported and fails the run.
	stdout, stderr, code := replicad(t, "extract", "-o", t.TempDir(), filepath.Join(fixtures, "bacula-9.6.7-span.2.vol"))
	if code != 1 || !strings.Contains(stderr, "data record without attributes") {
		t.Fatalf("span.2 alone: exit %d\n%s\n%s", code, stdout, stderr)
	}
	stdout, _, code = replicad(t, "ls", "-json", filepath.Join(fixtures, "bacula-9.6.7-interleave-2jobs.vol"))
	var job struct{ JobID int }
	json.Unmarshal([]byte(strings.Split(stdout, "\n")[1]), &job)
	if code != 0 || job.JobID == 0 {
		t.Fatalf("ls: exit %d\n%s", code, stdout)
	}
	stdout, _, code = replicad(t, "extract", "-job", strconv.Itoa(job.JobID), "-o", out, filepath.Join(fixtures, "bacula-9.6.7-interleave-2jobs.vol"))
	if code != 0 || !strings.Contains(stdout, "54 skipped") {
		t.Fatalf("-job: exit %d\n%s", code, stdout)
	}
}

func TestLsJSON(t *testing.T) {
	stdout, _, code := replicad(t, "ls", "-json", filepath.Join(fixtures, "bacula-9.6.7-accurate-2-incr.vol"))
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	kinds := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		kinds[m["kind"].(string)]++
		if m["type"] == "FT_DELETED" {
			kinds["deleted"]++
		}
	}
	if kinds["volume"] != 1 || kinds["job"] != 1 || kinds["job-end"] != 1 || kinds["file"] != 17 || kinds["deleted"] != 6 {
		t.Fatalf("kinds %v", kinds)
	}
}

func TestErrors(t *testing.T) {
	vol := filepath.Join(fixtures, "bacula-9.6.7-plain-md5.vol")
	if _, stderr, code := replicad(t, "extract", vol); code != 2 || !strings.Contains(stderr, "-o DIR is required") {
		t.Fatalf("no -o: exit %d %s", code, stderr)
	}
	if _, stderr, code := replicad(t, "frobnicate"); code != 2 || !strings.Contains(stderr, "unknown command") {
		t.Fatalf("bad command: exit %d %s", code, stderr)
	}
	if _, stderr, code := replicad(t, "ls", "/nonexistent/vol"); code != 1 || !strings.Contains(stderr, "/nonexistent/vol") {
		t.Fatalf("missing volume: exit %d %s", code, stderr)
	}
	// A damaged block: the error names the volume, the block and the offset.
	b, err := os.ReadFile(vol)
	if err != nil {
		t.Fatal(err)
	}
	b[100000] ^= 0x10
	bad := filepath.Join(t.TempDir(), "damaged.vol")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := replicad(t, "extract", "-o", t.TempDir(), bad)
	if code != 1 || !strings.Contains(stderr, "volume damaged.vol, block") || !strings.Contains(stderr, "offset") || !strings.Contains(stderr, "checksum mismatch") {
		t.Fatalf("damaged: exit %d %s", code, stderr)
	}
	// With -resync the damaged block is skipped, reported, and the run fails.
	stdout, stderr, code := replicad(t, "extract", "-resync", "-o", t.TempDir(), bad)
	if code != 1 || !strings.Contains(stderr, "damaged data skipped") || !strings.Contains(stdout, "reader notices") {
		t.Fatalf("resync: exit %d\n%s\n%s", code, stdout, stderr)
	}
}
