package extract

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/testvol"
)

const fixtures = "../../bacularec/testdata"

func runVolumes(t *testing.T, root string, workers int, opt Options, vols ...string) Summary {
	t.Helper()
	skipUnprivileged(t)
	var paths []string
	for _, v := range vols {
		paths = append(paths, filepath.Join(fixtures, v))
	}
	files := bacularec.NewFiles(bacularec.NewMultiReader(bacularec.FileVolumes(paths...)))
	var errs []error
	s, err := Run(context.Background(), files, root, opt, RunOptions{Workers: workers, Errorf: func(e error) { errs = append(errs, e) }})
	if err != nil {
		t.Fatal(err)
	}
	if s.Failed() || len(errs) > 0 {
		t.Fatalf("workers %d: %v\n%s", workers, errs, s)
	}
	return s
}

// Parallel writers give exactly the tree that applying the items in order
// gives: content, modes, owners, times, links, hard links, holes, xattrs.
func TestRunParallelMatchesSerial(t *testing.T) {
	for _, vols := range [][]string{
		{"bacula-9.6.7-plain-md5.vol"},
		{"bacula-9.6.7-sparse-gzip-sha256.vol"},
		{"bacula-9.6.7-lzo-md5.vol"},
		{"bacula-9.6.7-aclxattr-md5.vol"},
		{"bacula-9.6.7-span.1.vol", "bacula-9.6.7-span.2.vol"},
		{"bacula-9.6.7-accurate-1-full.vol", "bacula-9.6.7-accurate-2-incr.vol", "bacula-9.6.7-accurate-3-diff.vol"},
		{"bacula-9.6.7-interleave-2jobs.vol"},
	} {
		t.Run(strings.Join(vols, "+"), func(t *testing.T) {
			since := time.Now()
			serial, parallel := t.TempDir(), t.TempDir()
			opt := Options{Deletions: true}
			s1 := runVolumes(t, serial, 1, opt, vols...)
			s8 := runVolumes(t, parallel, 8, opt, vols...)
			if s1.Files != s8.Files || s1.Bytes != s8.Bytes || s1.Writer.Files != s8.Writer.Files ||
				s1.Writer.Deleted != s8.Writer.Deleted || s1.Writer.HardLinks != s8.Writer.HardLinks {
				t.Fatalf("serial:\n%s\nparallel:\n%s", s1, s8)
			}
			if s1.DigestsChecked != s8.DigestsChecked || s1.DigestMismatches+s8.DigestMismatches != 0 {
				t.Fatalf("digests: serial %d checked, parallel %d", s1.DigestsChecked, s8.DigestsChecked)
			}
			if s1.Files == 0 || s1.Jobs == 0 || s1.JobsOK != s1.Jobs {
				t.Fatalf("nothing extracted:\n%s", s1)
			}
			compareTrees(t, serial, parallel, since)
		})
	}
}

// Full, Incremental and Differential applied in order honour the deletion
// records: what the Incremental deleted is gone.
func TestRunDeletions(t *testing.T) {
	root := t.TempDir()
	s := runVolumes(t, root, 8, Options{Deletions: true}, "bacula-9.6.7-accurate-1-full.vol", "bacula-9.6.7-accurate-2-incr.vol")
	if s.Writer.Deleted == 0 {
		t.Fatalf("no deletions:\n%s", s)
	}
	base := filepath.Join(root, "tmp/brc-fixture-src/accurate")
	entries, err := os.ReadDir(base)
	if err != nil || len(entries) == 0 {
		t.Fatalf("extracted tree: %v", err)
	}
	// Everything present must be in the stage-2 tree manifest.
	manifest, err := os.ReadFile(filepath.Join(fixtures, "trees", "accurate-2.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(base, p)
		if rel != "." && !strings.Contains(string(manifest), "\n\""+rel+"\"\t") {
			t.Errorf("%s: present after the Incremental deleted it", rel)
		}
		n++
		return nil
	})
	if n < 10 {
		t.Fatalf("only %d entries", n)
	}
}

// Filtering by job extracts one job of two interleaved in a volume.
func TestRunFilterJob(t *testing.T) {
	skipUnprivileged(t)
	root := t.TempDir()
	vol := "bacula-9.6.7-interleave-2jobs.vol"
	files := bacularec.NewFiles(bacularec.NewReader(mustOpen(t, filepath.Join(fixtures, vol))))
	var first uint32
	for first == 0 {
		it, err := files.Next()
		if err != nil {
			t.Fatal(err)
		}
		if it.Kind == bacularec.KindJobStart {
			first = it.Job.JobID
		}
	}
	// Filter is called from the workers: it must be safe for that.
	s := runVolumes(t, root, 8, Options{Filter: func(f *bacularec.File) bool { return f.Job.JobID == first }}, vol)
	if s.Jobs != 2 || s.Writer.Skipped != 54 || s.Writer.Files+s.Writer.Dirs+s.Writer.Symlinks+s.Writer.HardLinks+s.Writer.Specials != 54 {
		t.Fatalf("%s", s)
	}
}

func mustOpen(t *testing.T, p string) *os.File {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func skipUnprivileged(t *testing.T) {
	if os.Getenv("EXTRACT_UNPRIVILEGED") == "1" {
		// TestUnprivileged reruns the suite from a copy of the binary in a
		// temporary directory, where the repository's fixtures are not.
		t.Skip("fixture volumes are extracted by the privileged run")
	}
}

// A content byte changed in a volume (block checksum recomputed, as if the
// damage happened before Bacula wrote the block) is a digest mismatch
// naming the file, with one or many workers.
func TestRunDigestMismatch(t *testing.T) {
	skipUnprivileged(t)
	vol, err := os.ReadFile(filepath.Join(fixtures, "bacula-9.6.7-plain-md5.vol"))
	if err != nil {
		t.Fatal(err)
	}
	testvol.FlipContentByte(vol, 2)
	p := filepath.Join(t.TempDir(), "patched.vol")
	if err := os.WriteFile(p, vol, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 8} {
		var errs []error
		files := bacularec.NewFiles(bacularec.NewReader(mustOpen(t, p)))
		s, err := Run(context.Background(), files, t.TempDir(), Options{}, RunOptions{Workers: workers, Errorf: func(e error) { errs = append(errs, e) }})
		if err != nil {
			t.Fatal(err)
		}
		var de *bacularec.DigestError
		if s.DigestMismatches != 1 || !s.Failed() || len(errs) != 1 || !errors.As(errs[0], &de) || de.Algo != "MD5" {
			t.Fatalf("workers %d: %v\n%s", workers, errs, s)
		}
	}
}
