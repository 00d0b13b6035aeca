package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openbrc/brc/bacularec"
)

// Every job a Follow pass read whole is placed, in start order, and
// ReadJobs gives each back alone, item for item: a job interleaved with
// another, and one spanning two volumes.
func TestFollowPlaced(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Vol-0001"), fixture(t, "bacula-9.6.7-span.1.vol"), 0o600)
	os.WriteFile(filepath.Join(dir, "Vol-0002"), fixture(t, "bacula-9.6.7-span.2.vol"), 0o600)
	os.WriteFile(filepath.Join(dir, "Vol-0003"), fixture(t, "bacula-9.6.7-interleave-2jobs.vol"), 0o600)
	os.WriteFile(filepath.Join(dir, "Vol-0004"), fixture(t, "bacula-9.6.7-accurate-1-full.vol"), 0o600)
	f, _ := newFollow(t, dir, FollowOptions{Idle: 50 * time.Millisecond})
	ctx := ctxFor(t, 10*time.Second)
	all, _ := pass(t, f, ctx)
	placed := f.Placed()
	var names []string
	for _, p := range placed {
		names = append(names, p.Job)
	}
	// In the order the pass started them (label write times order the
	// volumes: span, interleave, accurate).
	endOrder := jobs(all)
	if len(placed) != 4 || len(endOrder) != 4 {
		t.Fatalf("placed %v; jobs read %v", names, endOrder)
	}
	for _, p := range placed {
		if p.Gone != "" || len(p.Extents) == 0 || p.JobID == 0 || p.Job == "" {
			t.Fatalf("place %+v", p)
		}
		got := collect(t, mustOpen(t, ReadJobs([]JobPlace{p}), ctx))
		want := only(all, p.Job)
		// The volume items (labels) are nobody's.
		sameItems(t, p.Job, only(got, p.Job), want)
		if len(only(got, p.Job)) != len(got)-countKind(got, "volume") {
			t.Fatalf("%s: items of other jobs came along: %v", p.Job, got)
		}
	}
	if span := placed[0]; len(span.Extents) != 2 || !strings.HasSuffix(span.Extents[0].Path, "Vol-0001") ||
		!strings.HasSuffix(span.Extents[1].Path, "Vol-0002") {
		t.Fatalf("span extents %+v", span.Extents)
	}
	// Several jobs in one Source, in the order given.
	got := collect(t, mustOpen(t, ReadJobs([]JobPlace{placed[3], placed[0]}), ctx))
	if j := jobs(got); len(j) != 2 || j[0] != placed[3].Job+" ended=true status=T files=20" || !strings.HasPrefix(j[1], placed[0].Job+" ended=true") {
		t.Fatalf("jobs %v", j)
	}

	// The next pass starts a new list.
	f.Commit()
	os.WriteFile(filepath.Join(dir, "Vol-0005"), fixture(t, "bacula-9.6.7-accurate-2-incr.vol"), 0o600)
	pass(t, f, ctx)
	// After the label block, up to the end of the volume.
	if p := f.Placed(); len(p) != 1 || p[0].JobID != 14 || len(p[0].Extents) != 1 || p[0].Extents[0].Start != 232 ||
		p[0].Extents[0].End != int64(len(fixture(t, "bacula-9.6.7-accurate-2-incr.vol"))) {
		t.Fatalf("second pass placed %+v", p)
	}
}

func countKind(items []item, kind string) int {
	n := 0
	for _, i := range items {
		if i.kind == kind {
			n++
		}
	}
	return n
}

func mustOpen(t *testing.T, open OpenFunc, ctx context.Context) *bacularec.Files {
	t.Helper()
	files, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// A volume recycled (relabelled under the same name), truncated or
// deleted since no longer serves its jobs: checked up front and while
// reading.
func TestReadJobsVolumeChanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Vol-0001")
	os.WriteFile(path, fixture(t, "bacula-9.6.7-accurate-1-full.vol"), 0o600)
	f, _ := newFollow(t, dir, FollowOptions{Idle: 50 * time.Millisecond})
	ctx := ctxFor(t, 10*time.Second)
	pass(t, f, ctx)
	placed := f.Placed()
	if len(placed) != 1 {
		t.Fatalf("placed %+v", placed)
	}
	e := placed[0].Extents[0]
	if err := CheckExtent(e); err != nil {
		t.Fatal(err)
	}

	// Another volume under the same name, longer than what was read.
	var wrongLabel []byte
	wrongLabel = append(wrongLabel, fixture(t, "bacula-9.6.7-accurate-3-diff.vol")...)
	wrongLabel = append(wrongLabel, make([]byte, 64<<10)...)
	os.WriteFile(path, wrongLabel, 0o600)
	err := CheckExtent(e)
	if !errors.Is(err, ErrVolumeChanged) || !strings.Contains(err.Error(), "relabelled") || !strings.Contains(err.Error(), path) {
		t.Fatalf("relabelled: %v", err)
	}
	if _, err := ReadJobs(placed)(ctx); !errors.Is(err, ErrVolumeChanged) {
		t.Fatalf("ReadJobs over a relabelled volume: %v", err)
	}
	// Truncated.
	os.WriteFile(path, fixture(t, "bacula-9.6.7-accurate-1-full.vol")[:1000], 0o600)
	if err := CheckExtent(e); !errors.Is(err, ErrVolumeChanged) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated: %v", err)
	}
	// Deleted.
	os.Remove(path)
	if err := CheckExtent(e); !errors.Is(err, ErrVolumeChanged) || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("deleted: %v", err)
	}
	// Back as it was: it serves again.
	os.WriteFile(path, fixture(t, "bacula-9.6.7-accurate-1-full.vol"), 0o600)
	if got := collect(t, mustOpen(t, ReadJobs(placed), ctx)); len(jobs(got)) != 1 {
		t.Fatalf("restored volume: %v", jobs(got))
	}
}

// FIFO: with a copy dir the jobs lie in the copy; without, they are gone
// once the pass is over.
func TestFIFOPlaced(t *testing.T) {
	const fx = "bacula-9.6.7-fifo-md5.vol"
	data := fixture(t, fx)
	for _, keep := range []bool{true, false} {
		path := filepath.Join(t.TempDir(), "fifo")
		opt := FIFOOptions{SpoolDir: t.TempDir(), Idle: 200 * time.Millisecond, Logger: testLogger(t)}
		if keep {
			opt.CopyDir = t.TempDir()
		}
		f := NewFIFO(path, opt)
		ctx := ctxFor(t, 10*time.Second)
		wg := fifoWriter(t, path, data)
		got, _ := pass(t, f, ctx)
		wg.Wait()
		placed := f.Placed()
		f.Commit()
		if len(placed) != 1 || placed[0].JobID == 0 {
			t.Fatalf("keep %v: placed %+v", keep, placed)
		}
		p := placed[0]
		if !keep {
			if p.Gone == "" || len(p.Extents) != 0 || !strings.Contains(p.Gone, "fifo_copy_dir") {
				t.Fatalf("without copies: %+v", p)
			}
			f.Close()
			continue
		}
		if p.Gone != "" || len(p.Extents) != 1 || filepath.Dir(p.Extents[0].Path) != opt.CopyDir || p.Extents[0].Volume.VolumeName == "" {
			t.Fatalf("with copies: %+v", p)
		}
		sameItems(t, "from the copy", only(collect(t, mustOpen(t, ReadJobs(placed), ctx)), p.Job), only(got, p.Job))
		f.Close()
	}
}
