package replica

import (
	"errors"
	"reflect"
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
