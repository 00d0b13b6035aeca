package replica

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/crypt"
)

// The accurate chain Full -> Incremental -> Differential: the Incremental
// added added/new.txt, which was deleted before the Differential, and no
// record of the Differential says so. With History the replica ends as
// Bacula restores the latest state (the Full, then the Differential): the
// source tree at the Differential. Without it, the file stays.
func TestMirrorDifferentialAfterIncremental(t *testing.T) {
	chain := vols("accurate-1-full", "accurate-2-incr", "accurate-3-diff")
	want := scan(t, extractRef(t, vols("accurate-1-full", "accurate-3-diff")))
	leftover := strings.TrimPrefix(accDir, "/") + "added/new.txt"
	if _, ok := readManifest(t, "accurate-3")["added/new.txt"]; ok {
		t.Fatal("the stage-3 source tree has added/new.txt")
	}
	if _, ok := readManifest(t, "accurate-2")["added/new.txt"]; !ok {
		t.Fatal("the stage-2 source tree has no added/new.txt")
	}

	hist := tempDir(t)
	root := tempDir(t)
	mirrorRun(t, root, MirrorOptions{History: hist}, chain...)
	got := scan(t, root)
	diffTrees(t, want, got)
	if _, ok := got[leftover]; ok {
		t.Errorf("%s still there", leftover)
	}
	// The record now holds the Differential's paths only.
	ents, err := os.ReadDir(hist)
	if err != nil || len(ents) != 1 {
		t.Fatalf("history: %v %v", ents, err)
	}
	rec, err := os.ReadFile(filepath.Join(hist, ents[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	var diffPaths []string
	files := bacularec.NewFiles(bacularec.NewMultiReader(bacularec.FileVolumes(vols("accurate-3-diff")...)))
	for {
		it, err := files.Next()
		if err != nil {
			break
		}
		if it.Kind == bacularec.KindFile && it.File.Type != bacularec.TypeDeleted {
			diffPaths = append(diffPaths, it.File.Path)
		}
	}
	if string(rec) != strings.Join(diffPaths, "\x00")+"\x00" {
		t.Errorf("history after the Differential:\n%q\nwant the Differential's %d paths", rec, len(diffPaths))
	}

	// The same through an encrypted target: the paths are the same, the
	// content ciphertext.
	encRoot := tempDir(t)
	key := testKey(t)
	encRun(t, encRoot, key, MirrorOptions{History: tempDir(t)}, EncryptOptions{}, chain...)
	dec := filepath.Join(tempDir(t), "dec")
	if _, err := DecryptTarget(context.Background(), encRoot, dec, crypt.NewKeyring(key), crypt.TreeOptions{}); err != nil {
		t.Fatal(err)
	}
	diffTrees(t, plainScan(t, extractRef(t, vols("accurate-1-full", "accurate-3-diff"))), plainScan(t, dec))

	root2 := tempDir(t)
	mirrorRun(t, root2, MirrorOptions{}, chain...)
	if _, ok := scan(t, root2)[leftover]; !ok {
		t.Errorf("without History, %s is gone", leftover)
	}
}

func chainJob(client string, id uint32, level, status byte) *bacularec.Job {
	return &bacularec.Job{Started: true, Ended: true, JobID: id, Name: "Backup", Client: client, FileSet: "FS",
		Level: level, Status: status}
}

// Each chain (client, fileset, job name) has its own record; a
// Differential that did not end OK removes nothing; a Full that ended OK
// starts the record anew; a directory an Incremental made goes with what
// is in it; what the Full wrote stays.
func TestHistoryChains(t *testing.T) {
	ctx := context.Background()
	root, hist := tempDir(t), tempDir(t)
	m := NewMirror(root, MirrorOptions{History: hist})
	run := func(job *bacularec.Job, files ...[2]string) {
		t.Helper()
		if err := m.Begin(ctx, job); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f[0], "/") {
				d := &bacularec.File{Type: bacularec.TypeDirEnd, Path: f[0], Job: job,
					Stat: bacularec.Stat{Mode: 0o40755, Mtime: 1700000000, Atime: 1700000000}}
				if err := m.Put(ctx, d, nil); err != nil {
					t.Fatal(err)
				}
				continue
			}
			putAll(t, m, job, f)
		}
		if err := m.End(ctx, job); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string, want map[string]string) {
		t.Helper()
		for rel, w := range want {
			if got := readAt(t, root, rel); got != w {
				t.Errorf("%s: %s = %q, want %q", when, rel, got, w)
			}
		}
	}
	run(chainJob("a", 1, 'F', 'T'), [2]string{"/a/keep", "full"}, [2]string{"/a/changed", "full"})
	run(chainJob("a", 2, 'I', 'T'), [2]string{"/a/changed", "incr"}, [2]string{"/a/new", "incr"},
		[2]string{"/a/newdir/f", "incr"}, [2]string{"/a/newdir/", ""})
	run(chainJob("b", 3, 'I', 'T'), [2]string{"/b/new", "incr of b"})
	run(chainJob("a", 4, 'D', 'E')) // failed: nothing removed
	check("after a failed Differential", map[string]string{"a/new": "incr", "a/newdir/f": "incr", "b/new": "incr of b"})
	run(chainJob("a", 5, 'D', 'T'), [2]string{"/a/changed", "diff"})
	check("after the Differential", map[string]string{"a/keep": "full", "a/changed": "diff", "a/new": "<none>",
		"a/newdir/f": "<none>", "b/new": "incr of b"})
	if _, err := os.Lstat(filepath.Join(root, "a/newdir")); !os.IsNotExist(err) {
		t.Errorf("a/newdir: %v", err)
	}
	// A new Full: what the Incrementals of the old one wrote is no
	// longer a Differential's business.
	run(chainJob("a", 6, 'I', 'T'), [2]string{"/a/old-incr", "incr"})
	run(chainJob("a", 7, 'F', 'T'), [2]string{"/a/keep", "full"}, [2]string{"/a/changed", "diff"})
	run(chainJob("a", 8, 'D', 'T'))
	check("after the second Full's Differential", map[string]string{"a/old-incr": "incr", "a/keep": "full", "b/new": "incr of b"})
	if s := m.Stats(); s.Errors != 0 {
		t.Errorf("stats %+v", s)
	}
}

// Through a Retention, what a Differential makes stale is kept as a
// previous version.
func TestHistoryRetention(t *testing.T) {
	ctx := context.Background()
	cat, err := OpenCatalog(tempDir(t) + "/c.db")
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	root := tempDir(t)
	r := NewRetention(NewMirror(root, MirrorOptions{History: tempDir(t), Index: cat.Index("r")}), 2, nil, RetentionOptions{})
	for _, j := range []struct {
		job   *bacularec.Job
		files [][2]string
	}{
		{chainJob("a", 1, 'F', 'T'), [][2]string{{"/a/keep", "full"}}},
		{chainJob("a", 2, 'I', 'T'), [][2]string{{"/a/new", "incr"}}},
		{chainJob("a", 3, 'D', 'T'), nil},
	} {
		if err := r.Begin(ctx, j.job); err != nil {
			t.Fatal(err)
		}
		for _, f := range j.files {
			file, c := regAt(j.job, f[0], f[1])
			if err := r.Put(ctx, file, c); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.End(ctx, j.job); err != nil {
			t.Fatal(err)
		}
	}
	if got := readAt(t, root, "a/new"); got != "<none>" {
		t.Fatalf("a/new = %q", got)
	}
	vs, err := ListVersions(root, "/a/new")
	if err != nil || len(vs) != 1 || vs[0].JobID != 2 || vs[0].Size != int64(len("incr")) {
		t.Fatalf("versions of /a/new: %+v %v", vs, err)
	}
}
