//go:build integration

package replica

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needRoot fails under CI (CI=true), where .ci/run runs as root with
// mount and chattr, and skips elsewhere.
func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	missing := ""
	if os.Geteuid() != 0 {
		missing = "root"
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing += " " + tool
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("prerequisites missing: %s", missing)
	}
	t.Skipf("prerequisites missing: %s", missing)
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Real file systems failing under one target while another completes the
// job byte for byte: a tiny tmpfs (ENOSPC mid-job), a read-only mount
// (EROFS), an immutable directory (EPERM even for root). Once they are
// repaired, a second run catches them up, and only them.
func TestFaultsOnRealFileSystems(t *testing.T) {
	needRoot(t, "mount", "umount", "chattr")
	base := tempDir(t)
	good := filepath.Join(base, "good")
	full := filepath.Join(base, "full")
	ro := filepath.Join(base, "ro")
	immutable := filepath.Join(base, "immutable")
	for _, d := range []string{full, ro, immutable} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sh(t, "mount", "-t", "tmpfs", "-o", "size=96k,mode=755", "brc-full", full)
	t.Cleanup(func() { exec.Command("umount", full).Run() })
	sh(t, "mount", "-t", "tmpfs", "-o", "size=1m,mode=755", "brc-ro", ro)
	t.Cleanup(func() { exec.Command("umount", ro).Run() })
	sh(t, "mount", "-o", "remount,ro", ro)
	sh(t, "chattr", "+i", immutable)
	t.Cleanup(func() { exec.Command("chattr", "-i", immutable).Run() })

	cat, err := OpenCatalog(filepath.Join(base, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	paths := vols("plain-md5")
	want := scan(t, extractRef(t, paths))
	run := func() map[string]*TargetSummary {
		var dests []Destination
		for _, root := range []string{good, full, ro, immutable} {
			dests = append(dests, Destination{Name: root, Target: NewMirror(root, MirrorOptions{Journal: filepath.Join(base, "journal", filepath.Base(root))})})
		}
		e := &Engine{Dests: dests, Log: cat, Retry: RetryPolicy{Attempts: 1},
			Sleep: func(context.Context, time.Duration) error { return nil }}
		sum, err := e.Run(context.Background(), source(paths...))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*TargetSummary{}
		for _, ts := range sum.Targets {
			out[ts.Name] = ts
		}
		return out
	}
	sums := run()
	if s := sums[good]; !s.OK() || s.JobsDone != 1 {
		t.Fatalf("good target: %+v", s)
	}
	diffTrees(t, want, scan(t, good))
	for root, errno := range map[string]string{full: "no space left on device", ro: "read-only file system", immutable: "operation not permitted"} {
		s := sums[root]
		if s.OK() || s.JobsLeft != 1 || s.Attempts != 2 || !strings.Contains(s.Err, errno) {
			t.Errorf("%s: %+v", filepath.Base(root), s)
		}
	}
	// Nothing torn or temporary on the full file system.
	filepath.Walk(full, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(fi.Name(), ".brc-tmp.") {
			t.Errorf("temporary file left on the full target: %s", p)
		}
		return nil
	})

	// Repaired: more space, read-write, mutable. The next run sends the
	// job to them only.
	sh(t, "mount", "-o", "remount,size=16m", full)
	sh(t, "mount", "-o", "remount,rw", ro)
	sh(t, "chattr", "-i", immutable)
	sums = run()
	if s := sums[good]; !s.OK() || s.Files != 0 {
		t.Errorf("good target was sent the job again: %+v", s)
	}
	for _, root := range []string{full, ro, immutable} {
		if s := sums[root]; !s.OK() || s.JobsDone != 1 {
			t.Errorf("%s after repair: %+v", filepath.Base(root), s)
		}
		diffTrees(t, want, scan(t, root))
	}
}
