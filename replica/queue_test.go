package replica

import (
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/openbrc/brc/bacularec"
)

// What goes through the spool comes back the same: raw byte paths (not
// UTF-8), links, ACLs, xattrs, digests, and the digest error's text; also
// after the spool was read back entirely and started over (its gob
// streams start over with it).
func TestSpoolRoundTrip(t *testing.T) {
	job := &bacularec.Job{JobID: 7, Job: "J.2026", Level: 'I', Status: 'T', Ended: true}
	f := &bacularec.File{Job: job, FileIndex: 3, Type: bacularec.TypeReg, Path: "/srv/latin1-\xe9-\xff.txt",
		Link: "/x/\x80", Stat: bacularec.Stat{Mode: 0o100640, UID: 1, GID: 2, Size: 5, Mtime: 1700000000},
		ACLs:   []bacularec.ACL{{Stream: bacularec.StreamACLLinuxAccess, Text: "user::rw-\n"}},
		Xattrs: []bacularec.Xattr{{Name: "user.k", Value: []byte{0, 0xff, 1}}},
		Digest: &bacularec.Digest{Algo: "MD5", Sum: []byte{1, 2, 3}}, DigestErr: errors.New("digest mismatch"),
		NotDecoded: []bacularec.StreamCount{{Stream: 7, Records: 1, Bytes: 9}}}
	q := newQueue(0, t.TempDir(), 1<<20)
	defer q.release()
	in := []msg{
		{kind: mBegin, job: job, label: job},
		{kind: mFile, job: job, file: f},
		{kind: mData, job: job, file: f, off: 3, data: []byte("ab\xff")},
		{kind: mFileEnd, job: job, file: f},
		{kind: mJobEnd, job: job, label: job},
	}
	for round := range 3 {
		spoolRound(t, q, in, job, f, round)
	}
}

func spoolRound(t *testing.T, q *queue, in []msg, job *bacularec.Job, f *bacularec.File, round int) {
	t.Helper()
	// The first message takes the empty memory queue; the rest must spill.
	for i, m := range in {
		mode := orSpool
		if err := q.push(m, mode); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	if q.spooled != len(in)-1 {
		t.Fatalf("%d spooled", q.spooled)
	}
	for i, want := range in {
		got, err := q.pop()
		if err != nil {
			t.Fatal(err)
		}
		if got.kind != want.kind || got.off != want.off || string(got.data) != string(want.data) {
			t.Errorf("round %d, %d: %+v", round, i, got)
		}
		if i == 0 {
			continue // from memory
		}
		switch want.kind {
		case mBegin, mJobEnd:
			if !reflect.DeepEqual(*got.label, *job) {
				t.Errorf("%d: job %+v", i, got.label)
			}
		case mFile, mFileEnd:
			g := *got.file
			if g.DigestErr == nil || g.DigestErr.Error() != "digest mismatch" {
				t.Errorf("digest error %v", g.DigestErr)
			}
			w := *f
			w.Job, w.DigestErr, g.DigestErr = nil, nil, nil
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%d: file\n got %+v\nwant %+v", i, g, w)
			}
		}
	}
}

// A spool that fails loses what it held: the target gets what memory
// held, then the error once (not at every pop: a stopped target drains
// its queue to the end), and pushes fail with it from then on. Both
// ways: a spool that cannot be written, and one that cannot be read.
func TestSpoolFailure(t *testing.T) {
	job := &bacularec.Job{JobID: 1}
	f := &bacularec.File{Job: job, Path: "/a"}
	data := func(i int) msg {
		return msg{kind: mData, job: job, file: f, off: int64(i), data: []byte("x")}
	}
	for _, how := range []string{"write", "read"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			if how == "write" {
				dir = filepath.Join(dir, "missing")
			}
			q := newQueue(0, dir, 1<<20)
			defer q.release()
			if err := q.push(data(0), orSpool); err != nil {
				t.Fatal(err)
			}
			err := q.push(data(1), orSpool)
			if how == "write" {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("spooling: %v, want the spool's error", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				q.spool.Truncate(3) // the spool file damaged behind our back
			}
			if m, err := q.pop(); err != nil || m.off != 0 {
				t.Fatalf("first pop: offset %d, %v; want the message in memory", m.off, err)
			}
			if _, err := q.pop(); err == nil || !strings.Contains(err.Error(), "spool") {
				t.Fatalf("second pop: %v, want the spool's error", err)
			}
			if err := q.push(data(2), orSpool); err == nil || !strings.Contains(err.Error(), "spool") {
				t.Fatalf("push after the failure: %v", err)
			}
			q.push(msg{kind: mCut}, force)
			q.close()
			if m, err := q.pop(); err != nil || m.kind != mCut {
				t.Fatalf("after the error: %v %v, want the cut", m.kind, err)
			}
			if _, err := q.pop(); err != io.EOF {
				t.Fatalf("closed queue: %v, want io.EOF", err)
			}
		})
	}
}
