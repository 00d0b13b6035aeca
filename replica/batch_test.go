package replica_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/replica"
)

// visible lists the regular files under root by their final names.
func visible(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".brc-tmp.") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// A file waits under its temporary name about CommitDelay at most,
// counted on the Mirror's clock, even when the batch is far from full.
func TestMirrorCommitDelay(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	now := time.Unix(1_800_000_000, 0)
	m := replica.NewMirror(root, replica.MirrorOptions{Now: func() time.Time { return now }})
	job := &bacularec.Job{JobID: 1, Level: 'F'}
	if err := m.Begin(ctx, job); err != nil {
		t.Fatal(err)
	}
	put := func(name string) {
		t.Helper()
		data := []byte("content of " + name)
		if err := m.Put(ctx, regFile(job, "/"+name, int64(len(data))), content(data, 4)); err != nil {
			t.Fatal(err)
		}
	}
	put("a")
	now = now.Add(100 * time.Millisecond)
	put("b")
	if v := visible(t, root); len(v) != 0 {
		t.Fatalf("visible after 100ms: %v", v)
	}
	now = now.Add(150 * time.Millisecond)
	// a and b are flushed while c is written, and renamed into place by
	// a later Put once the flush is over; c and the later files wait for
	// their own CommitDelay.
	put("c")
	for i := 0; ; i++ {
		v := visible(t, root)
		if len(v) == 2 && strings.HasSuffix(v[0], "/a") && strings.HasSuffix(v[1], "/b") {
			break
		}
		if len(v) > 2 || i == 500 {
			t.Fatalf("visible 250ms after the first file: %v", v)
		}
		time.Sleep(10 * time.Millisecond)
		put(fmt.Sprintf("d%03d", i))
	}
	if err := m.End(ctx, job); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "b"))
	if err != nil || string(b) != "content of b" {
		t.Fatalf("b: %q %v", b, err)
	}
}

// When the volume stops growing in the middle of a job (Bacula writes
// more slowly than the target), the engine has the Mirror put the files
// finished so far in place, however small the batch: they are visible
// while the job is still running. With IdleFlush negative they wait for
// the job's end.
func TestEngineIdleFlush(t *testing.T) {
	vol, err := os.ReadFile("../bacularec/testdata/bacula-9.6.7-plain-md5.vol")
	if err != nil {
		t.Fatal(err)
	}
	last := 0 // offset of the last block
	for off := 0; off < len(vol); off += int(binary.BigEndian.Uint32(vol[off+4:])) {
		last = off
	}
	for _, idle := range []time.Duration{0, -1} {
		root := t.TempDir()
		pr, pw := io.Pipe()
		e := &replica.Engine{IdleFlush: idle, Dests: []replica.Destination{{Name: "m",
			Target: replica.NewMirror(root, replica.MirrorOptions{CommitDelay: time.Hour})}}}
		done := make(chan *replica.Summary, 1)
		go func() {
			sum, err := e.Run(context.Background(), func(context.Context) (*bacularec.Files, error) {
				return bacularec.NewFiles(bacularec.NewReader(pr)), nil
			})
			if err != nil {
				t.Error(err)
			}
			done <- sum
		}()
		if _, err := pw.Write(vol[:last]); err != nil {
			t.Fatal(err)
		}
		var v []string
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && len(v) == 0; time.Sleep(20 * time.Millisecond) {
			v = visible(t, root)
		}
		switch {
		case idle == 0 && len(v) == 0:
			t.Error("no file visible while the volume waits for its last block")
		case idle < 0 && len(v) != 0:
			t.Errorf("IdleFlush < 0: %d files visible before the job's end", len(v))
		}
		pw.Write(vol[last:])
		pw.Close()
		sum := <-done
		if sum.Failed() || sum.Targets[0].JobsDone != 1 || len(visible(t, root)) != 33 {
			t.Fatalf("idle %v: %+v, %d files", idle, sum.Targets[0], len(visible(t, root)))
		}
		t.Logf("IdleFlush %v: %d of 33 files visible before the last block", idle, len(v))
	}
}
