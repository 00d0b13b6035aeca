package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// files maps the regular files under root (relative path) to their
// content; temporary names are listed apart.
func files(t *testing.T, root string) (map[string]string, []string) {
	t.Helper()
	out := map[string]string{}
	var temps []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil // a temporary file renamed or removed meanwhile
		}
		rel, _ := filepath.Rel(root, p)
		if strings.HasPrefix(fi.Name(), ".brc-tmp.") {
			temps = append(temps, rel)
			return nil
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out[rel] = string(b)
		}
		return nil
	})
	return out, temps
}

// killAfter starts replicad replicate and kills it with SIGKILL after d
// (or lets it finish first).
func killAfter(t *testing.T, d time.Duration, args ...string) (killed bool) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return false
	case <-time.After(d):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		return true
	}
}

// kill -9 at several points of a Full, then of an Incremental on top of
// it: at every moment each file under its name is whole (one of the
// versions the jobs hold, never a mix or a torn one); a new run cleans the
// temporary files and finishes the interrupted job.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("takes ~20 s")
	}
	dir := t.TempDir()
	target := filepath.Join(dir, "dr")
	// Slow enough to be killed in the middle: the volumes hold ~50 KB.
	conf := writeConf(t, dir, "targets = "+target+":bwlimit=8K\nskip_unchanged = yes\nstate_dir = "+dir+"/state\n")
	full, incr := accurate+"1-full.vol", accurate+"2-incr.vol"
	refFull, refIncr := filepath.Join(dir, "ref1"), filepath.Join(dir, "ref2")
	for ref, vols := range map[string][]string{refFull: {full}, refIncr: {full, incr}} {
		if _, e, rc := replicad(t, append([]string{"extract", "-q", "-o", ref}, vols...)...); rc != 0 {
			t.Fatal(e)
		}
	}
	want1, _ := files(t, refFull)
	want2, _ := files(t, refIncr)

	check := func(stage string, allowed ...map[string]string) {
		t.Helper()
		got, _ := files(t, target)
		for p, c := range got {
			ok := false
			for _, a := range allowed {
				if w, in := a[p]; in && w == c {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s: %s holds %d bytes that no job wrote", stage, p, len(c))
			}
		}
	}
	kills := 0
	for i, d := range []time.Duration{300 * time.Millisecond, 1500 * time.Millisecond, 2500 * time.Millisecond} {
		if killAfter(t, d, "replicate", "-c", conf, full) {
			kills++
		}
		check("full, kill "+string(rune('1'+i)), want1)
	}
	if out, e, rc := replicad(t, "replicate", "-c", conf, full); rc != 0 {
		t.Fatalf("after kills: rc %d\n%s\n%s", rc, out, e)
	}
	got, temps := files(t, target)
	if len(temps) != 0 || len(got) != len(want1) {
		t.Fatalf("after the Full: %d files (want %d), temporary files %v", len(got), len(want1), temps)
	}
	check("full done", want1)

	for i, d := range []time.Duration{200 * time.Millisecond, 1200 * time.Millisecond} {
		if killAfter(t, d, "replicate", "-c", conf, full, incr) {
			kills++
		}
		check("incremental, kill "+string(rune('1'+i)), want1, want2)
	}
	out, e, rc := replicad(t, "replicate", "-c", conf, full, incr)
	if rc != 0 {
		t.Fatalf("rc %d\n%s\n%s", rc, out, e)
	}
	got, temps = files(t, target)
	if len(temps) != 0 {
		t.Errorf("temporary files left: %v", temps)
	}
	for p, c := range want2 {
		if got[p] != c {
			t.Errorf("%s: not the Incremental's version", p)
		}
	}
	if len(got) != len(want2) {
		t.Errorf("%d files, want %d", len(got), len(want2))
	}
	if kills < 3 {
		t.Errorf("only %d runs were killed mid-way: too fast to test", kills)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "journal")); err == nil {
		ents, _ := os.ReadDir(filepath.Join(dir, "state", "journal"))
		if len(ents) != 0 {
			t.Errorf("journal left: %v", ents)
		}
	}
}
