package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// treeWithoutVersions is tree without the versions directory, moved
// aside meanwhile.
func treeWithoutVersions(t *testing.T, root string) string {
	aside := filepath.Join(t.TempDir(), "versions")
	if err := os.Rename(filepath.Join(root, ".brc-versions"), aside); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := os.Rename(aside, filepath.Join(root, ".brc-versions")); err != nil {
			t.Fatal(err)
		}
	}()
	return tree(t, root)
}

// mode = retention: replicate keeps previous versions, versions lists
// them, restore-version brings one back or copies it.
func TestRetentionCommands(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	conf := writeConf(t, dir, "targets = "+a+";"+b+"\nmode = retention\nretention_versions = 1\n"+
		"strip_prefix = /tmp/brc-fixture-src\nskip_unchanged = yes\nstate_dir = "+dir+"/state\n")
	volumes := []string{accurate + "1-full.vol", accurate + "2-incr.vol", accurate + "3-diff.vol"}
	out, errOut, rc := replicad(t, append([]string{"replicate", "-c", conf}, volumes...)...)
	if rc != 0 || !strings.Contains(out, "jobs 3 done, 0 left") {
		t.Fatalf("rc %d\n%s\n%s", rc, out, errOut)
	}
	ref := filepath.Join(dir, "ref") // the latest state: the Full, then the Differential
	if _, e, rc := replicad(t, "extract", "-q", "-strip-prefix", "/tmp/brc-fixture-src", "-o", ref, volumes[0], volumes[2]); rc != 0 {
		t.Fatal(e)
	}
	ref2 := filepath.Join(dir, "ref2") // after the Incremental
	if _, e, rc := replicad(t, append([]string{"extract", "-q", "-strip-prefix", "/tmp/brc-fixture-src", "-o", ref2}, volumes[:2]...)...); rc != 0 {
		t.Fatal(e)
	}
	for _, tg := range []string{a, b} {
		if got, want := treeWithoutVersions(t, tg), tree(t, ref); got != want {
			t.Errorf("%s differs from extract:\n%s\n---\n%s", tg, got, want)
		}
	}

	const modify = "/tmp/brc-fixture-src/accurate/modify.txt"
	out, errOut, rc = replicad(t, "versions", "-c", conf, modify)
	line := regexp.MustCompile(`(?m)^  (\d{8}T\d{6}Z-job14)\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+14\s+10\s+-rw-r--r--\s*$`)
	m := line.FindStringSubmatch(out)
	if rc != 0 || m == nil || strings.Count(out, "1 previous versions") != 2 || strings.Contains(out, "job13") {
		t.Fatalf("versions: rc %d\n%s\n%s", rc, out, errOut)
	}
	version := m[1]
	// -target alone needs no configuration, and takes the path under
	// the root.
	out, _, rc = replicad(t, "versions", "-target", a, "/accurate/modify.txt")
	if rc != 0 || !strings.Contains(out, "target "+a+": /accurate/modify.txt: 1 previous versions") || !strings.Contains(out, version) {
		t.Errorf("versions -target: rc %d\n%s", rc, out)
	}
	out, _, rc = replicad(t, "versions", "-c", conf, "-target", b, "/tmp/brc-fixture-src/accurate/keep.txt")
	if rc != 0 || out != "target "+b+": /tmp/brc-fixture-src/accurate/keep.txt: no previous versions\n" {
		t.Errorf("versions of an unchanged file: rc %d\n%s", rc, out)
	}

	// Restore on the target; flags after the arguments.
	cur := filepath.Join(a, "accurate/modify.txt")
	before := sha(t, cur)
	out, errOut, rc = replicad(t, "restore-version", modify, version, "-c", conf, "-target", a)
	if rc != 0 || !strings.Contains(out, "version "+version+" restored") {
		t.Fatalf("restore-version: rc %d\n%s\n%s", rc, out, errOut)
	}
	if sha(t, cur) != sha(t, filepath.Join(ref2, "accurate/modify.txt")) {
		t.Error("restored content is not the Incremental's")
	}
	out, _, _ = replicad(t, "versions", "-target", a, "/accurate/modify.txt")
	if !strings.Contains(out, "2 previous versions") || !strings.Contains(out, "-job0 ") {
		t.Errorf("the replaced file is not kept as a version:\n%s", out)
	}
	// Copy elsewhere (a directory: the file lands in it).
	dst := filepath.Join(dir, "out")
	os.Mkdir(dst, 0o755)
	out, errOut, rc = replicad(t, "restore-version", "-target", b, "/accurate/modify.txt", version, "-o", dst)
	if rc != 0 || sha(t, filepath.Join(dst, "modify.txt")) != sha(t, filepath.Join(ref2, "accurate/modify.txt")) {
		t.Errorf("restore-version -o: rc %d\n%s\n%s", rc, out, errOut)
	}
	if sha(t, filepath.Join(b, "accurate/modify.txt")) != before {
		t.Error("restore-version -o changed the target")
	}

	for _, tc := range []struct {
		args []string
		rc   int
		want string
	}{
		{[]string{"restore-version", "-c", conf, modify, version}, 2, "2 targets configured: choose one with -target ROOT"},
		{[]string{"restore-version", "-target", a, "/accurate/modify.txt", "20200101T000000Z-job1"}, 1, "has no version 20200101T000000Z-job1 (it has: "},
		{[]string{"restore-version", "-target", a, "/accurate/keep.txt", version}, 1, "/accurate/keep.txt has no versions under " + a},
		{[]string{"restore-version", "-target", a, "/../etc/passwd", version}, 1, "unsafe path"},
		{[]string{"restore-version", "-target", a, "/accurate/modify.txt"}, 2, "want PATH and VERSION"},
		{[]string{"versions", "-target", a}, 2, "want one PATH"},
		{[]string{"versions", "-c", filepath.Join(dir, "missing.conf"), modify}, 1, "missing.conf"},
	} {
		_, errOut, rc := replicad(t, tc.args...)
		if rc != tc.rc || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: rc %d, stderr %q; want rc %d and %q", tc.args, rc, errOut, tc.rc, tc.want)
		}
	}
}
