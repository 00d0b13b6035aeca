package replica

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/openbrc/brc/bacularec"
)

// pieces is a Content over one piece.
type pieces struct {
	data []byte
	done bool
}

func (p *pieces) Next() (int64, []byte, error) {
	if p.done || len(p.data) == 0 {
		return 0, nil, io.EOF
	}
	p.done = true
	return 0, p.data, nil
}

func regAt(job *bacularec.Job, path, data string) (*bacularec.File, Content) {
	return &bacularec.File{Type: bacularec.TypeReg, Path: path, Job: job,
		Stat: bacularec.Stat{Mode: 0o100644, Size: int64(len(data)), Mtime: 1700000000, Atime: 1700000000}}, &pieces{data: []byte(data)}
}

func readAt(t *testing.T, root, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if os.IsNotExist(err) {
		return "<none>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func groupMirror(t *testing.T, root, journal string) *Mirror {
	return NewMirror(root, MirrorOptions{CommitFiles: 1, Journal: journal,
		Groups: []Group{{Name: "db", Paths: []string{"/var/lib/db", "/var/log/db"}}}})
}

func putAll(t *testing.T, m *Mirror, job *bacularec.Job, files ...[2]string) {
	t.Helper()
	for _, f := range files {
		if f[1] == "<deleted>" {
			if err := m.Put(context.Background(), &bacularec.File{Type: bacularec.TypeDeleted, Path: f[0], Job: job}, nil); err != nil {
				t.Fatal(err)
			}
			continue
		}
		file, c := regAt(job, f[0], f[1])
		if err := m.Put(context.Background(), file, c); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConsistencyGroups(t *testing.T) {
	ctx := context.Background()
	root := tempDir(t)
	journal := filepath.Join(tempDir(t), "journal.json")
	m := groupMirror(t, root, journal)
	full := &bacularec.Job{JobID: 1, Job: "full", Level: 'F', Ended: true, Status: 'T'}
	if err := m.Begin(ctx, full); err != nil {
		t.Fatal(err)
	}
	putAll(t, m, full, [2]string{"/var/lib/db/data", "data v1"}, [2]string{"/var/log/db/wal", "wal v1"},
		[2]string{"/var/log/db/old", "old"}, [2]string{"/etc/other", "other v1"})
	if err := m.End(ctx, full); err != nil {
		t.Fatal(err)
	}

	incr := &bacularec.Job{JobID: 2, Job: "incr", Level: 'I', Ended: true, Status: 'T'}
	if err := m.Begin(ctx, incr); err != nil {
		t.Fatal(err)
	}
	putAll(t, m, incr, [2]string{"/var/lib/db/data", "data v2"}, [2]string{"/etc/other", "other v2"},
		[2]string{"/var/log/db/wal", "wal v2"}, [2]string{"/var/log/db/old", "<deleted>"})
	// Before the end of the job: the group is all old, the rest new once
	// flushed (the engine has it flushed when the stream pauses).
	m.FlushPending()
	for rel, want := range map[string]string{"var/lib/db/data": "data v1", "var/log/db/wal": "wal v1",
		"var/log/db/old": "old", "etc/other": "other v2"} {
		if got := readAt(t, root, rel); got != want {
			t.Errorf("before the switch, %s = %q, want %q", rel, got, want)
		}
	}
	if err := m.End(ctx, incr); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{"var/lib/db/data": "data v2", "var/log/db/wal": "wal v2", "var/log/db/old": "<none>"} {
		if got := readAt(t, root, rel); got != want {
			t.Errorf("after the switch, %s = %q, want %q", rel, got, want)
		}
	}

	// A job that did not end OK switches nothing of the group.
	bad := &bacularec.Job{JobID: 3, Job: "bad", Level: 'I', Ended: true, Status: 'E'}
	m.Begin(ctx, bad)
	putAll(t, m, bad, [2]string{"/var/lib/db/data", "data v3"}, [2]string{"/etc/other", "other v3"})
	if err := m.End(ctx, bad); err != nil {
		t.Fatal(err)
	}
	if got := readAt(t, root, "var/lib/db/data"); got != "data v2" {
		t.Errorf("failed job switched the group: %q", got)
	}
	if got := readAt(t, root, "etc/other"); got != "other v3" {
		t.Errorf("outside the group: %q", got)
	}
	if n, _ := removeTemps(root); n != 0 {
		t.Errorf("%d temporary files left", n)
	}
}

// A crash in the middle of a switch is completed at the next start.
func TestConsistencyGroupCrashMidSwitch(t *testing.T) {
	ctx := context.Background()
	root := tempDir(t)
	journal := filepath.Join(tempDir(t), "journal.json")
	m := groupMirror(t, root, journal)
	full := &bacularec.Job{JobID: 1, Job: "full", Level: 'F', Ended: true, Status: 'T'}
	m.Begin(ctx, full)
	putAll(t, m, full, [2]string{"/var/lib/db/a", "a1"}, [2]string{"/var/lib/db/b", "b1"}, [2]string{"/var/log/db/c", "c1"})
	if err := m.End(ctx, full); err != nil {
		t.Fatal(err)
	}
	incr := &bacularec.Job{JobID: 2, Job: "incr", Level: 'I', Ended: true, Status: 'T'}
	m.Begin(ctx, incr)
	putAll(t, m, incr, [2]string{"/var/lib/db/a", "a2"}, [2]string{"/var/lib/db/b", "b2"}, [2]string{"/var/log/db/c", "<deleted>"})
	// What switchGroups does, stopped after the first rename: the process
	// dies there (no End, no Close).
	held := m.w.Held()
	if len(held) != 2 {
		t.Fatalf("held %+v", held)
	}
	if err := m.w.Sync(); err != nil {
		t.Fatal(err)
	}
	rec := journalRecord{Job: "incr", JobID: 2, Deletes: []string{"/var/log/db/c"}}
	for _, h := range held {
		rec.Switch = append(rec.Switch, switchEntry{Rel: h.Rel, Tmp: h.Tmp})
	}
	b, _ := json.Marshal(rec)
	if err := writeFileAtomic(journal, b); err != nil {
		t.Fatal(err)
	}
	if err := m.w.Install(held[0].Rel, held[0].Tmp); err != nil {
		t.Fatal(err)
	}
	if readAt(t, root, held[0].Rel) != "a2" && readAt(t, root, held[0].Rel) != "b2" {
		t.Fatal("first rename not done")
	}

	// Restart.
	var logs []string
	m2 := NewMirror(root, MirrorOptions{Journal: journal, Logf: func(f string, a ...any) { logs = append(logs, f) },
		Groups: []Group{{Name: "db", Paths: []string{"/var/lib/db", "/var/log/db"}}}})
	next := &bacularec.Job{JobID: 3, Job: "next", Level: 'I', Ended: true, Status: 'T'}
	if err := m2.Begin(ctx, next); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{"var/lib/db/a": "a2", "var/lib/db/b": "b2", "var/log/db/c": "<none>"} {
		if got := readAt(t, root, rel); got != want {
			t.Errorf("after recovery, %s = %q, want %q", rel, got, want)
		}
	}
	if n, _ := removeTemps(root); n != 0 {
		t.Errorf("%d temporary files left", n)
	}
	if len(logs) < 2 {
		t.Errorf("recovery not logged: %v", logs)
	}
	if err := m2.End(ctx, next); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(journal); !os.IsNotExist(err) {
		t.Errorf("journal left: %v", err)
	}
}
