package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const accurate = "../../bacularec/testdata/bacula-9.6.7-accurate-"

func writeConf(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "replicad.conf")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReplicate(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	conf := writeConf(t, dir, "# two sites\ntargets = "+a+";"+b+":bwlimit=10M\nskip_unchanged = yes\nverify_after = yes\nstate_dir = "+dir+"/state\n")
	volumes := []string{accurate + "1-full.vol", accurate + "2-incr.vol", accurate + "3-diff.vol"}
	out, errOut, rc := replicad(t, append([]string{"replicate", "-c", conf}, volumes...)...)
	if rc != 0 || !strings.Contains(out, "target "+a+": ok: 60 files") || !strings.Contains(out, "jobs 3 done, 0 left") {
		t.Fatalf("rc %d\n%s\n%s", rc, out, errOut)
	}
	// What Bacula restores of the latest state: the Full, then the
	// Differential (what the Incremental added and is gone since is not
	// there).
	ref := filepath.Join(dir, "ref")
	if _, e, rc := replicad(t, "extract", "-q", "-o", ref, volumes[0], volumes[2]); rc != 0 {
		t.Fatal(e)
	}
	for _, tg := range []string{a, b} {
		if got, want := tree(t, tg), tree(t, ref); got != want {
			t.Errorf("%s differs from extract:\n%s\n---\n%s", tg, got, want)
		}
	}
	// Again: everything is already there.
	out, _, rc = replicad(t, append([]string{"replicate", "-c", conf}, volumes...)...)
	if rc != 0 || !strings.Contains(out, ": ok: 0 files, 0 bytes sent, 0 written") {
		t.Errorf("second run rc %d\n%s", rc, out)
	}
	// The last job replayed: sent again, nothing written (the targets
	// hold its files already).
	out, _, rc = replicad(t, "replicate", "-replay", "-c", conf, volumes[2])
	if rc != 0 || !strings.Contains(out, "25129 bytes sent, 0 written") {
		t.Errorf("replay rc %d\n%s", rc, out)
	}
}

// A target that cannot be written fails alone, and the exit status says so.
func TestReplicateFailedTarget(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o600)
	conf := writeConf(t, dir, "targets = "+good+";"+blocker+"/dr\nstate_dir = "+dir+"/state\nretry_attempts = 1\nretry_backoff = 0\n")
	out, _, rc := replicad(t, "replicate", "-c", conf, accurate+"1-full.vol")
	if rc != 1 || !strings.Contains(out, "target "+good+": ok: 20 files") ||
		!strings.Contains(out, "target "+blocker+"/dr: FAILED") || !strings.Contains(out, "jobs 0 done, 1 left; 2 passes") {
		t.Errorf("rc %d\n%s", rc, out)
	}
}

func TestReplicateConfigErrors(t *testing.T) {
	dir := t.TempDir()
	conf := writeConf(t, dir, "targets = /x\nskip_unchanged = perhaps\n")
	_, errOut, rc := replicad(t, "replicate", "-c", conf, accurate+"1-full.vol")
	if rc != 1 || !strings.Contains(errOut, `replicad.conf:2: skip_unchanged: bad value "perhaps" (want yes or no)`) {
		t.Errorf("rc %d: %s", rc, errOut)
	}
}

// tree lists the files under root with their sizes and modes.
func tree(t *testing.T, root string) string {
	var b strings.Builder
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		data := ""
		if fi.Mode().IsRegular() {
			d, _ := os.ReadFile(p)
			data = string(d)
			if len(data) > 40 {
				data = data[:40]
			}
		}
		mtime := fi.ModTime().UTC().String()
		if rel == "tmp" || rel == "tmp/brc-fixture-src" {
			mtime = "" // above the FileSet: made at restore time
		}
		b.WriteString(rel + " " + fi.Mode().String() + " " + mtime + " " + data + "\n")
		return nil
	})
	return b.String()
}
