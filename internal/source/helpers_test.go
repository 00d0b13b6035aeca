package source

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/openbrc/brc/bacularec"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "bacularec", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type item struct {
	kind string
	job  string
	desc string
}

func (i item) String() string { return i.kind + " " + i.job + " " + i.desc }

func jobOf(it *bacularec.Item) *bacularec.Job {
	if it.Job != nil {
		return it.Job
	}
	if it.File != nil {
		return it.File.Job
	}
	return nil
}

// collect reads items as (kind, job, path, data hash).
func collect(t *testing.T, files *bacularec.Files) []item {
	t.Helper()
	defer files.Close()
	var out []item
	for {
		it, err := files.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("after %d items: %v", len(out), err)
		}
		var x item
		x.kind = it.Kind.String()
		if j := jobOf(it); j != nil {
			x.job = j.Job
		}
		switch it.Kind {
		case bacularec.KindVolume:
			x.desc = it.Volume.VolumeName
		case bacularec.KindJobStart:
			x.desc = fmt.Sprintf("started=%v", it.Job.Started)
		case bacularec.KindJobEnd:
			x.desc = fmt.Sprintf("ended=%v status=%c files=%d", it.Job.Ended, max(it.Job.Status, '-'), it.Job.Files)
		case bacularec.KindFile:
			x.desc = it.File.Path
		case bacularec.KindData, bacularec.KindRaw:
			x.desc = fmt.Sprintf("%s @%d %x", it.File.Path, it.Offset, sha256.Sum256(it.Data))
		case bacularec.KindFileEnd:
			x.desc = fmt.Sprintf("%s incomplete=%v digest-err=%v", it.File.Path, it.File.Incomplete, it.File.DigestErr)
		case bacularec.KindNotice:
			x.desc = it.Err.Error()
		}
		out = append(out, x)
	}
}

func readWhole(t *testing.T, names ...string) []item {
	t.Helper()
	var paths []string
	for _, n := range names {
		paths = append(paths, filepath.Join("..", "..", "bacularec", "testdata", n))
	}
	return collect(t, bacularec.NewFiles(bacularec.NewMultiReader(bacularec.FileVolumes(paths...))))
}

func sameItems(t *testing.T, what string, got, want []item) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: nothing expected", what)
	}
	if !slices.Equal(got, want) {
		n := 0
		for n < min(len(got), len(want)) && got[n] == want[n] {
			n++
		}
		g, w := "<end>", "<end>"
		if n < len(got) {
			g = got[n].String()
		}
		if n < len(want) {
			w = want[n].String()
		}
		t.Fatalf("%s: %d items, want %d; first difference at %d:\n got  %s\n want %s", what, len(got), len(want), n, g, w)
	}
}

func only(items []item, job string) []item {
	var out []item
	for _, i := range items {
		if i.job == job {
			out = append(out, i)
		}
	}
	return out
}

func jobs(items []item) []string {
	var out []string
	for _, i := range items {
		if i.kind == "job-end" {
			out = append(out, i.job+" "+i.desc)
		}
	}
	return out
}

// blocks returns the block boundaries of a volume image.
func blocks(t *testing.T, b []byte) []int {
	t.Helper()
	var offs []int
	for off := 0; off < len(b); {
		offs = append(offs, off)
		off += int(binary.BigEndian.Uint32(b[off+4:]))
	}
	return offs
}

// writeSlowly appends data to w in chunks of odd sizes, pausing now and
// then, and longer in the middle of the header of the second data block
// and in the middle of a record.
func writeSlowly(w io.Writer, data []byte, pauseAt []int) error {
	sizes := []int{7, 3001, 13, 40961, 1, 977, 20011, 5}
	pos, i := 0, 0
	for pos < len(data) {
		n := min(sizes[i%len(sizes)], len(data)-pos)
		for _, p := range pauseAt {
			if p > pos && p < pos+n {
				n = p - pos
			}
		}
		if _, err := w.Write(data[pos : pos+n]); err != nil {
			return err
		}
		pos += n
		i++
		if slices.Contains(pauseAt, pos) {
			time.Sleep(60 * time.Millisecond)
		} else if i%4 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

// pausePoints returns offsets in the middle of a block header and in the
// middle of a record of the fixture b.
func pausePoints(t *testing.T, b []byte) []int {
	offs := blocks(t, b)
	if len(offs) < 3 {
		return []int{offs[len(offs)-1] + 10}
	}
	return []int{offs[2] + 10, offs[2] + 24 + 12 + 100, offs[len(offs)-1] + 3}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
