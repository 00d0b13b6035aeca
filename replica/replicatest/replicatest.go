package replicatest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/replica"
)

// Capabilities a Harness can declare missing in Harness.Skip.
const (
	// CapOwner: the target keeps UID and GID.
	CapOwner = "owner"
	// CapFIFO: the target makes FIFOs (TypeSpecial with S_IFIFO).
	CapFIFO = "fifo"
	// CapXattr: the target keeps extended attributes.
	CapXattr = "xattr"
	// CapACL: the target keeps POSIX ACLs.
	CapACL = "acl"
	// CapSparseHoles: the target leaves holes unallocated (Entry.Holes).
	CapSparseHoles = "sparse-holes"
	// CapHardLinkIdentity: Tree can tell which paths share an inode
	// (Entry.HardLinkOf). Without it, a hard link is only checked to hold
	// the same file as its first name.
	CapHardLinkIdentity = "hardlink-identity"
)

// Harness tells Run how to drive and inspect one kind of target.
type Harness struct {
	// New returns a fresh, empty target.
	New func(t *testing.T) replica.Target
	// Tree returns what the target holds now, keyed by backed-up path
	// without a trailing slash ("/etc/hosts", "/etc"). The root itself is
	// left out. Anything the target created outside its own space should
	// be reported too, under a path that cannot be a backed-up one (for a
	// directory, "/../name" for a name next to the root): the suite fails
	// on entries it did not expect.
	Tree func(t *testing.T, tg replica.Target) map[string]Entry
	// Skip lists the capabilities (Cap...) the target does not have.
	Skip []string
	// Bugs maps subtest names to known target bugs: those subtests are
	// skipped with "BUG: " and the description, so that the suite can
	// land before the target is fixed.
	Bugs map[string]string
}

// Entry is what a target holds for one path, as its Harness reads it.
type Entry struct {
	// Type is TypeReg for regular files (also empty ones and hard
	// links), TypeDirEnd, TypeSymlink or TypeSpecial.
	Type bacularec.FileType
	// Mode is the permission bits, setuid, setgid and sticky included
	// (0o7777). Not compared for symbolic links.
	Mode     uint32
	UID, GID uint32
	Mtime    int64 // Unix seconds
	Data     []byte
	Link     string            // symbolic link target
	Xattrs   map[string]string // extended attributes other than ACLs and security labels
	// ACL is the access ACL in the form CanonACL gives, "" when the mode
	// bits say it all.
	ACL string
	// HardLinkOf is "" or the first path, in sort order, of those sharing
	// this path's inode (so "" for that first path itself).
	HardLinkOf string
	// Special is, for TypeSpecial, the S_IFMT bits of st_mode (0o010000
	// for a FIFO).
	Special uint32
	// Holes reports that some of the file is not allocated: holes were
	// left as holes. Only checked where a hole is expected.
	Holes bool
}

// Piece is a piece of content at an offset.
type Piece struct {
	Off  int64
	Data []byte
}

// Content is a replica.Content over Pieces that behaves like the
// engine's: each piece is handed out in a buffer that the next call
// overwrites, and File's ACLs and xattrs are set just before io.EOF is
// returned, no earlier. With Err set, Err is returned after the pieces
// instead of io.EOF (content cut short).
type Content struct {
	File   *bacularec.File
	Pieces []Piece
	Xattrs []bacularec.Xattr
	ACLs   []bacularec.ACL
	Err    error

	i    int
	buf  []byte
	last int // length of the piece handed out last
}

// Next implements replica.Content.
func (c *Content) Next() (int64, []byte, error) {
	// A target that keeps a piece past the next call gets garbage.
	for i := range c.buf[:c.last] {
		c.buf[i] = 0xEE
	}
	c.last = 0
	if c.i < len(c.Pieces) {
		p := c.Pieces[c.i]
		c.i++
		if cap(c.buf) < len(p.Data) {
			c.buf = make([]byte, len(p.Data))
		}
		c.last = copy(c.buf[:len(p.Data)], p.Data)
		return p.Off, c.buf[:c.last], nil
	}
	if c.Err != nil {
		return 0, nil, c.Err
	}
	if c.File != nil {
		c.File.Xattrs = slices.Clone(c.Xattrs)
		c.File.ACLs = slices.Clone(c.ACLs)
	}
	return 0, nil, io.EOF
}

// Run runs the conformance suite against the targets h makes. Each subtest
// starts from a fresh target.
func Run(t *testing.T, h Harness) {
	if h.New == nil || h.Tree == nil {
		t.Fatal("replicatest: Harness needs New and Tree")
	}
	s := &suite{h: h}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, replica.Target)
	}{
		{"regular", s.regular},
		{"sparse", s.sparse},
		{"replace", s.replace},
		{"type-change", s.typeChange},
		{"symlink", s.symlink},
		{"directories", s.directories},
		{"hardlink", s.hardlink},
		{"hardlink-missing", s.hardlinkMissing},
		{"fifo", s.fifo},
		{"owner", s.owner},
		{"xattr", s.xattr},
		{"acl", s.acl},
		{"delete", s.delete},
		{"jobs", s.jobs},
		{"hostile-path", s.hostilePath},
		{"symlink-swap", s.symlinkSwap},
		{"content-error", s.contentError},
		{"stats", s.stats},
		{"stats-deleted", s.statsDeleted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if why, ok := h.Bugs[tc.name]; ok {
				t.Skip("BUG: " + why)
			}
			s.seen = map[string]bool{}
			tc.fn(t, h.New(t))
		})
	}
}

type suite struct {
	h Harness
	// seen holds the paths the current subtest put successfully: the
	// directories above them may remain on the target although no record
	// names them.
	seen map[string]bool
}

func (s *suite) has(capability string) bool { return !slices.Contains(s.h.Skip, capability) }

func (s *suite) need(t *testing.T, capability string) {
	t.Helper()
	if !s.has(capability) {
		t.Skipf("target has no %q capability", capability)
	}
}

// Mode type bits, as Bacula stores them in Stat.Mode.
const (
	sIFMT  = 0o170000
	sIFREG = 0o100000
	sIFDIR = 0o040000
	sIFLNK = 0o120000
	sIFIFO = 0o010000
)

// t0 is the time around which the suite's jobs happen.
const t0 = 1_700_000_123

func newJob(id uint32, level byte) *bacularec.Job {
	start := time.Unix(t0+int64(id)*3600, 0)
	return &bacularec.Job{
		Session: bacularec.SessionKey{ID: id, Time: t0},
		Started: true, Ended: true, Status: 'T',
		JobID: id, Job: fmt.Sprintf("Suite.%d", id), Name: "Suite", Client: "suite-fd",
		FileSet: "Suite", Pool: "Default", Type: 'B', Level: level,
		StartTime: start, EndTime: start.Add(time.Minute),
	}
}

// rec is one file record to put, with what the target should then hold
// for it.
type rec struct {
	f    *bacularec.File
	c    *Content
	data []byte // logical content of a regular file, holes included
}

func file(j *bacularec.Job, typ bacularec.FileType, path string, mode uint32, mtime int64) rec {
	f := &bacularec.File{Job: j, Type: typ, Path: path, AttrStream: 1,
		Stat: bacularec.Stat{Mode: mode, Nlink: 1, Atime: mtime, Mtime: mtime, Ctime: mtime, Blksize: 4096}}
	return rec{f: f, c: &Content{File: f}}
}

// reg is a regular file given as pieces of at most piece bytes.
func reg(j *bacularec.Job, path string, perm uint32, mtime int64, data []byte, piece int) rec {
	typ := bacularec.TypeReg
	if len(data) == 0 {
		typ = bacularec.TypeRegEmpty
	}
	r := file(j, typ, path, sIFREG|perm, mtime)
	r.f.Stat.Size = int64(len(data))
	r.data = data
	for off := 0; off < len(data); off += piece {
		r.c.Pieces = append(r.c.Pieces, Piece{Off: int64(off), Data: data[off:min(off+piece, len(data))]})
	}
	return r
}

// sparse is a regular file of size made of pieces, zeros elsewhere.
func sparse(j *bacularec.Job, path string, perm uint32, mtime, size int64, pieces ...Piece) rec {
	r := file(j, bacularec.TypeReg, path, sIFREG|perm, mtime)
	r.f.Stat.Size = size
	r.data = make([]byte, size)
	for _, p := range pieces {
		copy(r.data[p.Off:], p.Data)
	}
	r.c.Pieces = pieces
	return r
}

func dir(j *bacularec.Job, path string, perm uint32, mtime int64) rec {
	if !strings.HasSuffix(path, "/") {
		panic("replicatest: directory path without a trailing slash: " + path)
	}
	r := file(j, bacularec.TypeDirEnd, path, sIFDIR|perm, mtime)
	r.f.Stat.Size = 4096
	return r
}

func symlink(j *bacularec.Job, path, target string, mtime int64) rec {
	r := file(j, bacularec.TypeSymlink, path, sIFLNK|0o777, mtime)
	r.f.Link = target
	r.f.Stat.Size = int64(len(target))
	return r
}

// hardlink is a second name of first, saved earlier in the same job.
func hardlink(j *bacularec.Job, path string, first rec) rec {
	f := &bacularec.File{Job: j, Type: bacularec.TypeLinkSaved, Path: path, Link: first.f.Path,
		AttrStream: 1, Stat: first.f.Stat}
	f.Stat.Nlink = 2
	first.f.Stat.Nlink = 2
	r := rec{f: f, c: &Content{File: f}, data: first.data}
	r.c.Xattrs, r.c.ACLs = first.c.Xattrs, first.c.ACLs
	return r
}

func fifo(j *bacularec.Job, path string, perm uint32, mtime int64) rec {
	return file(j, bacularec.TypeSpecial, path, sIFIFO|perm, mtime)
}

// deleted is an accurate-mode deletion record; directories end in "/".
func deleted(j *bacularec.Job, path string) rec {
	mode := uint32(sIFREG)
	if strings.HasSuffix(path, "/") {
		mode = sIFDIR
	}
	return file(j, bacularec.TypeDeleted, path, mode, 0)
}

func (r rec) owner(uid, gid uint32) rec {
	r.f.Stat.UID, r.f.Stat.GID = uid, gid
	return r
}

func (r rec) xattrs(kv ...string) rec {
	for i := 0; i+1 < len(kv); i += 2 {
		r.c.Xattrs = append(r.c.Xattrs, bacularec.Xattr{Name: kv[i], Value: []byte(kv[i+1])})
	}
	return r
}

func (r rec) acl(text string) rec {
	r.c.ACLs = append(r.c.ACLs, bacularec.ACL{Stream: bacularec.StreamACLLinuxAccess, Text: text})
	return r
}

// key is the Tree key of a backed-up path.
func key(p string) string {
	if len(p) > 1 {
		return strings.TrimSuffix(p, "/")
	}
	return p
}

// want is the Entry the target should hold after r was put.
func (r rec) want() Entry {
	st := r.f.Stat
	e := Entry{Type: r.f.Type, Mode: st.Mode & 0o7777, UID: st.UID, GID: st.GID, Mtime: st.Mtime}
	switch r.f.Type {
	case bacularec.TypeReg, bacularec.TypeRegEmpty:
		e.Type, e.Data = bacularec.TypeReg, r.data
	case bacularec.TypeLinkSaved:
		e.Type, e.Data, e.HardLinkOf = bacularec.TypeReg, r.data, key(r.f.Link)
	case bacularec.TypeSymlink:
		e.Link = r.f.Link
	case bacularec.TypeSpecial:
		e.Special = st.Mode & sIFMT
	}
	if len(r.c.Xattrs) > 0 {
		e.Xattrs = map[string]string{}
		for _, x := range r.c.Xattrs {
			e.Xattrs[x.Name] = string(x.Value)
		}
	}
	for _, a := range r.c.ACLs {
		if a.Stream == bacularec.StreamACLLinuxAccess {
			e.ACL = CanonACL(a.Text)
		}
	}
	return e
}

// expect is the tree recs leave, the later ones replacing the earlier.
func expect(recs ...rec) map[string]Entry {
	m := map[string]Entry{}
	for _, r := range recs {
		m[key(r.f.Path)] = r.want()
	}
	return m
}

// job runs one job through tg: every Put and End must succeed.
func (s *suite) job(t *testing.T, tg replica.Target, j *bacularec.Job, recs ...rec) {
	t.Helper()
	ctx := context.Background()
	if err := tg.Begin(ctx, j); err != nil {
		t.Fatalf("job %d: Begin: %v", j.JobID, err)
	}
	for i, r := range recs {
		r.f.FileIndex = int32(i + 1)
		s.seen[key(r.f.Path)] = true
		if err := tg.Put(ctx, r.f, r.c); err != nil {
			t.Fatalf("job %d: Put %s (%v): %v", j.JobID, r.f.Path, r.f.Type, err)
		}
	}
	if err := tg.End(ctx, j); err != nil {
		t.Fatalf("job %d: End: %v", j.JobID, err)
	}
}

// check compares what tg holds with want. The target may also hold the
// directories above the paths put (made for them, without a record of
// their own); anything else is an error.
func (s *suite) check(t *testing.T, tg replica.Target, want map[string]Entry) {
	t.Helper()
	got := s.h.Tree(t, tg)
	for _, p := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: missing", p)
			continue
		}
		for _, d := range s.diff(want[p], g) {
			t.Errorf("%s: %s", p, d)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[p]; ok {
			continue
		}
		if got[p].Type == bacularec.TypeDirEnd && s.ancestor(p) {
			continue
		}
		t.Errorf("%s: unexpected %v", p, got[p].Type)
	}
}

func (s *suite) ancestor(dir string) bool {
	for p := range s.seen {
		if strings.HasPrefix(p, dir+"/") {
			return true
		}
	}
	return false
}

// diff lists how got differs from want, leaving out what the target's
// missing capabilities make meaningless.
func (s *suite) diff(want, got Entry) []string {
	var d []string
	add := func(format string, args ...any) { d = append(d, fmt.Sprintf(format, args...)) }
	if got.Type != want.Type {
		add("type %v, want %v", got.Type, want.Type)
		return d
	}
	if want.Type != bacularec.TypeSymlink && got.Mode != want.Mode {
		add("mode %#o, want %#o", got.Mode, want.Mode)
	}
	if s.has(CapOwner) && (got.UID != want.UID || got.GID != want.GID) {
		add("owner %d:%d, want %d:%d", got.UID, got.GID, want.UID, want.GID)
	}
	if got.Mtime != want.Mtime {
		add("mtime %d, want %d", got.Mtime, want.Mtime)
	}
	if !bytes.Equal(got.Data, want.Data) {
		add("content %s, want %s", describe(got.Data), describe(want.Data))
	}
	if got.Link != want.Link {
		add("link %q, want %q", got.Link, want.Link)
	}
	if s.has(CapXattr) && !maps.Equal(got.Xattrs, want.Xattrs) {
		add("xattrs %q, want %q", got.Xattrs, want.Xattrs)
	}
	if s.has(CapACL) && got.ACL != want.ACL {
		add("ACL %q, want %q", got.ACL, want.ACL)
	}
	if s.has(CapHardLinkIdentity) && got.HardLinkOf != want.HardLinkOf {
		add("hard link of %q, want %q", got.HardLinkOf, want.HardLinkOf)
	}
	if got.Special != want.Special {
		add("special file type %#o, want %#o", got.Special, want.Special)
	}
	if s.has(CapSparseHoles) && want.Holes && !got.Holes {
		add("holes were filled")
	}
	return d
}

// describe summarises content for a failure message.
func describe(b []byte) string {
	if len(b) <= 32 {
		return strconv.Quote(string(b))
	}
	return fmt.Sprintf("%d bytes %q...", len(b), b[:16])
}

// pattern returns n bytes that differ with seed and position, so that a
// piece written at the wrong offset shows.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251) + byte(i/251)
	}
	return b
}

func (s *suite) regular(t *testing.T, tg replica.Target) {
	j := newJob(1, 'F')
	recs := []rec{
		reg(j, "/data/empty", 0o644, t0-100, nil, 1),
		reg(j, "/data/one", 0o600, t0-200, []byte("x"), 1),
		reg(j, "/data/4095", 0o640, t0-300, pattern(1, 4095), 1000),
		reg(j, "/data/4096", 0o444, t0-400, pattern(2, 4096), 4096),
		// Pieces that are not a multiple of anything.
		reg(j, "/data/big", 0o755, t0-500, pattern(3, 1<<20+3), 100_003),
		reg(j, "/data/setuid", 0o4755, t0-600, []byte("#!/bin/sh\n"), 4),
		reg(j, "/top", 0o644, t0-700, []byte("at the top\n"), 3),
	}
	s.job(t, tg, j, recs...)
	s.check(t, tg, expect(recs...))
}

func (s *suite) sparse(t *testing.T, tg replica.Target) {
	j := newJob(1, 'F')
	const mib = 1 << 20
	mid := append(append(pattern(5, 4096), make([]byte, 8192)...), pattern(6, 4096)...)
	recs := []rec{
		// Data, a gap, data with zero blocks inside, a trailing hole.
		sparse(j, "/sparse/file", 0o644, t0-10, 4*mib,
			Piece{0, pattern(4, 4096)},
			Piece{mib, mid},
			Piece{2*mib + 7, []byte("unaligned")}),
		// Nothing but a hole.
		sparse(j, "/sparse/hole", 0o600, t0-20, 2*mib),
	}
	s.job(t, tg, j, recs...)
	want := expect(recs...)
	for _, p := range []string{"/sparse/file", "/sparse/hole"} {
		e := want[p]
		e.Holes = true
		want[p] = e
	}
	s.check(t, tg, want)
}

func (s *suite) replace(t *testing.T, tg replica.Target) {
	j1 := newJob(1, 'F')
	j2 := newJob(2, 'I')
	old := []rec{
		reg(j1, "/r/shrinks", 0o644, t0-100, pattern(1, 100_000), 30_000),
		reg(j1, "/r/grows", 0o644, t0-100, []byte("short"), 5),
		reg(j1, "/r/empties", 0o644, t0-100, []byte("something"), 5),
		reg(j1, "/r/same", 0o644, t0-100, []byte("unchanged"), 5),
		dir(j1, "/r/", 0o755, t0-50),
	}
	s.job(t, tg, j1, old...)
	s.check(t, tg, expect(old...))
	changed := []rec{
		reg(j2, "/r/shrinks", 0o600, t0+100, []byte("now short"), 4),
		reg(j2, "/r/grows", 0o640, t0+100, pattern(2, 200_000), 65536),
		reg(j2, "/r/empties", 0o644, t0+100, nil, 1),
		dir(j2, "/r/", 0o750, t0+50),
	}
	s.job(t, tg, j2, changed...)
	s.check(t, tg, expect(append(old, changed...)...))
}

// typeChange: a file becomes a directory and a directory becomes a file
// between two jobs, as an accurate Incremental reports it.
func (s *suite) typeChange(t *testing.T, tg replica.Target) {
	j1 := newJob(1, 'F')
	j2 := newJob(2, 'I')
	s.job(t, tg, j1,
		reg(j1, "/t/x", 0o644, t0-100, []byte("a file"), 3),
		reg(j1, "/t/d/e", 0o644, t0-100, []byte("in a directory"), 3),
		dir(j1, "/t/d/", 0o755, t0-90),
		dir(j1, "/t/", 0o755, t0-80),
	)
	recs := []rec{
		reg(j2, "/t/x/y", 0o644, t0+100, []byte("below what was a file"), 5),
		dir(j2, "/t/x/", 0o700, t0+110),
		reg(j2, "/t/d", 0o600, t0+120, []byte("was a directory"), 5),
		dir(j2, "/t/", 0o755, t0+130),
		deleted(j2, "/t/d/e"),
	}
	s.job(t, tg, j2, recs...)
	s.check(t, tg, expect(recs[:4]...))
}

func (s *suite) symlink(t *testing.T, tg replica.Target) {
	j1 := newJob(1, 'F')
	j2 := newJob(2, 'I')
	first := []rec{
		symlink(j1, "/l/rel", "../some/where", t0-10),
		// Absolute targets are kept as they are, never followed.
		symlink(j1, "/l/abs", "/etc/passwd", t0-20),
		symlink(j1, "/l/dangling", "nowhere", t0-30),
		reg(j1, "/l/becomes-link", 0o644, t0-40, []byte("a file for now"), 4),
		symlink(j1, "/l/becomes-file", "x", t0-50),
	}
	s.job(t, tg, j1, first...)
	s.check(t, tg, expect(first...))
	second := []rec{
		symlink(j2, "/l/becomes-link", "abs/../target", t0+10),
		reg(j2, "/l/becomes-file", 0o600, t0+20, []byte("a file now"), 4),
		symlink(j2, "/l/rel", "elsewhere", t0+30),
	}
	s.job(t, tg, j2, second...)
	s.check(t, tg, expect(append(first, second...)...))
}

func (s *suite) directories(t *testing.T, tg replica.Target) {
	j := newJob(1, 'F')
	// Bacula's order: a directory's record after everything in it.
	recs := []rec{
		reg(j, "/d/sub/f", 0o644, t0-100, []byte("inside"), 3),
		dir(j, "/d/sub/", 0o1777, t0-200),
		dir(j, "/d/empty/", 0o700, t0-300),
		dir(j, "/d/locked/", 0o500, t0-350),
		reg(j, "/d/g", 0o644, t0-400, []byte("next to sub"), 3),
		dir(j, "/d/sgid/", 0o2750, t0-450),
		dir(j, "/d/", 0o750, t0-500),
	}
	s.job(t, tg, j, recs...)
	s.check(t, tg, expect(recs...))
}

func (s *suite) hardlink(t *testing.T, tg replica.Target) {
	j := newJob(1, 'F')
	a := reg(j, "/h/a", 0o640, t0-100, pattern(7, 10_000), 4096)
	b := hardlink(j, "/h/b", a)
	c := hardlink(j, "/h/sub/c", a)
	d := reg(j, "/h/d", 0o644, t0-200, nil, 1)
	e := hardlink(j, "/h/e", d)
	recs := []rec{a, b, c, d, e, dir(j, "/h/sub/", 0o755, t0-300), dir(j, "/h/", 0o755, t0-400)}
	s.job(t, tg, j, recs...)
	s.check(t, tg, expect(recs...))
}

// hardlinkMissing: the first name of a hard link is not on the target;
// that concerns the link only.
func (s *suite) hardlinkMissing(t *testing.T, tg replica.Target) {
	ctx := context.Background()
	j := newJob(1, 'F')
	if err := tg.Begin(ctx, j); err != nil {
		t.Fatal(err)
	}
	ghost := reg(j, "/hm/ghost", 0o644, t0, []byte("never put"), 4)
	link := hardlink(j, "/hm/link", ghost)
	err := tg.Put(ctx, link.f, link.c)
	switch {
	case replica.FileErrors(err) == nil:
		t.Errorf("Put of a link to a missing file = %v, want a *FileError", err)
	case !errors.Is(err, replica.ErrLinkTarget):
		t.Errorf("Put of a link to a missing file = %v, want it to wrap replica.ErrLinkTarget", err)
	}
	ok := reg(j, "/hm/ok", 0o644, t0, []byte("fine"), 4)
	s.seen[key(ok.f.Path)] = true
	if err := tg.Put(ctx, ok.f, ok.c); err != nil {
		t.Fatalf("Put after a file error: %v", err)
	}
	if err := tg.End(ctx, j); err != nil {
		t.Fatalf("End: %v", err)
	}
	s.check(t, tg, expect(ok))
}

func (s *suite) fifo(t *testing.T, tg replica.Target) {
	s.need(t, CapFIFO)
	j1 := newJob(1, 'F')
	j2 := newJob(2, 'I')
	first := []rec{
		fifo(j1, "/p/fifo", 0o640, t0-10),
		reg(j1, "/p/was-file", 0o644, t0-20, []byte("data"), 4),
	}
	s.job(t, tg, j1, first...)
	second := []rec{fifo(j2, "/p/was-file", 0o600, t0+10)}
	s.job(t, tg, j2, second...)
	s.check(t, tg, expect(append(first, second...)...))
}

func (s *suite) owner(t *testing.T, tg replica.Target) {
	s.need(t, CapOwner)
	j := newJob(1, 'F')
	recs := []rec{
		reg(j, "/o/f", 0o644, t0-10, []byte("owned"), 5).owner(1234, 5678),
		// chown clears setuid: it must come back.
		reg(j, "/o/suid", 0o4755, t0-20, []byte("suid"), 5).owner(1001, 1001),
		symlink(j, "/o/link", "f", t0-30).owner(42, 43),
		dir(j, "/o/sub/", 0o2775, t0-40).owner(7, 8),
		dir(j, "/o/", 0o755, t0-50).owner(0, 9),
	}
	s.job(t, tg, j, recs...)
	s.check(t, tg, expect(recs...))
}

func (s *suite) xattr(t *testing.T, tg replica.Target) {
	s.need(t, CapXattr)
	j := newJob(1, 'F')
	// The content sets File.Xattrs only at io.EOF: a target reading them
	// before draining the content sees none.
	recs := []rec{
		reg(j, "/x/f", 0o644, t0-10, []byte("with xattrs"), 4).
			xattrs("user.comment", "hello", "user.empty", "", "user.bin", "\x00\x01\xff"),
		// A read-only file: xattrs must go on before the mode.
		reg(j, "/x/ro", 0o444, t0-20, []byte("read-only"), 4).xattrs("user.k", "v"),
		reg(j, "/x/none", 0o644, t0-30, []byte("without"), 4),
		dir(j, "/x/d/", 0o755, t0-40).xattrs("user.dir", "on a directory"),
		dir(j, "/x/", 0o755, t0-50),
	}
	s.job(t, tg, j, recs...)
	s.check(t, tg, expect(recs...))
}

func (s *suite) acl(t *testing.T, tg replica.Target) {
	s.need(t, CapACL)
	j := newJob(1, 'F')
	recs := []rec{
		// acl_to_text's long form, as Bacula stores it; the group-class
		// bits of the mode are the mask.
		reg(j, "/a/f", 0o640, t0-10, []byte("with an ACL"), 4).
			acl("user::rw-\nuser:1234:r--\ngroup::r--\nmask::r--\nother::---\n"),
		dir(j, "/a/d/", 0o750, t0-20).acl("user::rwx\ngroup::r-x\ngroup:4321:rwx\nmask::r-x\nother::---\n"),
		dir(j, "/a/", 0o755, t0-30),
	}
	s.job(t, tg, j, recs...)
	s.check(t, tg, expect(recs...))
}

func (s *suite) delete(t *testing.T, tg replica.Target) {
	j1 := newJob(1, 'F')
	j2 := newJob(2, 'I')
	keep := []rec{
		reg(j1, "/del/keep", 0o644, t0-10, []byte("stays"), 5),
		reg(j1, "/del/dirkeep/f", 0o644, t0-10, []byte("stays"), 5),
		dir(j1, "/del/dirkeep/", 0o755, t0-10),
	}
	first := append([]rec{
		reg(j1, "/del/gone", 0o644, t0-20, []byte("goes"), 5),
		symlink(j1, "/del/gonelink", "keep", t0-20),
		reg(j1, "/del/tree/a", 0o644, t0-30, []byte("goes"), 5),
		reg(j1, "/del/tree/sub/b", 0o644, t0-30, []byte("goes"), 5),
		dir(j1, "/del/tree/sub/locked/", 0o500, t0-30),
		dir(j1, "/del/tree/sub/", 0o755, t0-30),
		dir(j1, "/del/tree/", 0o755, t0-30),
	}, keep...)
	d := dir(j1, "/del/", 0o755, t0)
	s.job(t, tg, j1, append(first, d)...)
	d2 := dir(j2, "/del/", 0o755, t0+10)
	s.job(t, tg, j2, d2,
		// Accurate mode: deletion records come after the job's files; a
		// directory's ends in "/" and takes everything below with it.
		deleted(j2, "/del/gone"),
		deleted(j2, "/del/gonelink"),
		deleted(j2, "/del/tree/"),
		deleted(j2, "/del/never-was"),
		deleted(j2, "/del/never-was-dir/"),
	)
	s.check(t, tg, expect(append(keep, d2)...))
}

// jobs: a Full then two Incrementals; the tree is that of the last.
func (s *suite) jobs(t *testing.T, tg replica.Target) {
	full := newJob(10, 'F')
	inc1 := newJob(11, 'I')
	inc2 := newJob(12, 'I')
	f := []rec{
		reg(full, "/etc/hosts", 0o644, t0-1000, []byte("127.0.0.1 localhost\n"), 8),
		reg(full, "/etc/passwd", 0o644, t0-1000, []byte("root:x:0:0::/root:/bin/sh\n"), 8),
		reg(full, "/etc/old", 0o644, t0-1000, []byte("obsolete\n"), 8),
		reg(full, "/etc/ssl/key", 0o600, t0-1000, pattern(9, 3000), 1024),
		dir(full, "/etc/ssl/", 0o755, t0-900),
		dir(full, "/etc/", 0o755, t0-800),
	}
	s.job(t, tg, full, f...)
	i1 := []rec{
		reg(inc1, "/etc/hosts", 0o644, t0+100, []byte("127.0.0.1 localhost\n10.0.0.1 db\n"), 8),
		reg(inc1, "/etc/motd", 0o644, t0+110, []byte("hello\n"), 8),
		dir(inc1, "/etc/", 0o755, t0+120),
		deleted(inc1, "/etc/old"),
	}
	s.job(t, tg, inc1, i1...)
	i2 := []rec{
		reg(inc2, "/etc/ssl/key", 0o600, t0+200, pattern(10, 5000), 1024),
		reg(inc2, "/etc/ssl/cert", 0o644, t0+210, []byte("CERT"), 8),
		dir(inc2, "/etc/ssl/", 0o755, t0+220),
	}
	s.job(t, tg, inc2, i2...)
	s.check(t, tg, expect(f[0], f[1], f[3], f[4], i1[0], i1[1], i1[2], i2[0], i2[1], i2[2]))
}

// hostilePath: records naming paths outside the replica are file errors,
// the job goes on, and nothing appears outside.
func (s *suite) hostilePath(t *testing.T, tg replica.Target) {
	ctx := context.Background()
	j := newJob(1, 'F')
	if err := tg.Begin(ctx, j); err != nil {
		t.Fatal(err)
	}
	fine := reg(j, "/fine", 0o644, t0, []byte("fine"), 4)
	for _, r := range []rec{
		reg(j, "/../escape", 0o644, t0, []byte("escaped"), 4),
		reg(j, "/a/../../b", 0o644, t0, []byte("escaped"), 4),
		reg(j, "/../../../../../../../tmp/replicatest-escape", 0o644, t0, []byte("escaped"), 4),
		symlink(j, "/../escape-link", "/", t0),
		dir(j, "/../escape-dir/", 0o755, t0),
		fifo(j, "/../escape-fifo", 0o644, t0),
		hardlink(j, "/../escape-hardlink", fine),
		// A hard link whose first name is outside.
		hardlink(j, "/hl", reg(j, "/../../etc/passwd", 0o644, t0, nil, 1)),
		deleted(j, "/../"),
		deleted(j, "/../fine"),
	} {
		err := tg.Put(ctx, r.f, r.c)
		if replica.FileErrors(err) == nil {
			t.Errorf("Put %q (%v) = %v, want a *replica.FileError", r.f.Path, r.f.Type, err)
		}
	}
	if err := tg.Put(ctx, fine.f, fine.c); err != nil {
		t.Fatalf("Put after hostile paths: %v", err)
	}
	s.seen[key(fine.f.Path)] = true
	if err := tg.End(ctx, j); replica.IsTargetFailure(err) {
		t.Fatalf("End: %v", err)
	} else if err != nil {
		t.Logf("End reports file errors again: %v", err)
	}
	s.check(t, tg, expect(fine))
}

// symlinkSwap: a directory replaced by a symbolic link to outside, then
// written below, must not write through the link.
func (s *suite) symlinkSwap(t *testing.T, tg replica.Target) {
	j1 := newJob(1, 'F')
	j2 := newJob(2, 'I')
	s.job(t, tg, j1, symlink(j1, "/s", "../outside", t0))
	recs := []rec{
		reg(j2, "/s/x", 0o644, t0+10, []byte("stays inside"), 4),
		dir(j2, "/s/", 0o755, t0+20),
	}
	s.job(t, tg, j2, recs...)
	s.check(t, tg, expect(recs...))
}

// contentError: content that fails part-way leaves the old file, or
// nothing, never part of the new one.
func (s *suite) contentError(t *testing.T, tg replica.Target) {
	j1 := newJob(1, 'F')
	old := reg(j1, "/ce/f", 0o644, t0-10, []byte("the old version"), 4)
	s.job(t, tg, j1, old)

	ctx := context.Background()
	j2 := newJob(2, 'I')
	if err := tg.Begin(ctx, j2); err != nil {
		t.Fatal(err)
	}
	for _, r := range []rec{
		reg(j2, "/ce/f", 0o600, t0+10, pattern(1, 200_000), 65536),
		reg(j2, "/ce/new", 0o644, t0+10, pattern(2, 200_000), 65536),
	} {
		r.c.Pieces = r.c.Pieces[:2]
		r.c.Err = io.ErrUnexpectedEOF
		r.c.Xattrs = []bacularec.Xattr{{Name: "user.never", Value: []byte("set")}}
		err := tg.Put(ctx, r.f, r.c)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("Put %s with content failing = %v, want io.ErrUnexpectedEOF", r.f.Path, err)
		}
	}
	ok := reg(j2, "/ce/ok", 0o644, t0+20, []byte("after the failure"), 4)
	s.seen[key(ok.f.Path)] = true
	if err := tg.Put(ctx, ok.f, ok.c); err != nil {
		t.Fatalf("Put after a failed file: %v", err)
	}
	if err := tg.End(ctx, j2); err != nil && replica.IsTargetFailure(err) {
		t.Fatalf("End: %v", err)
	}
	s.check(t, tg, expect(old, ok))
}

func (s *suite) stats(t *testing.T, tg replica.Target) {
	sr, ok := tg.(replica.StatsReporter)
	if !ok {
		t.Skip("target keeps no Stats")
	}
	j := newJob(1, 'F')
	recs := []rec{
		reg(j, "/st/abc", 0o644, t0, []byte("abc"), 2),
		reg(j, "/st/empty", 0o644, t0, nil, 1),
		sparse(j, "/st/sparse", 0o644, t0, 100_000, Piece{0, pattern(1, 10)}, Piece{50_000, pattern(2, 10)}),
		symlink(j, "/st/link", "abc", t0),
		dir(j, "/st/", 0o755, t0),
	}
	s.job(t, tg, j, recs...)
	got := sr.Stats()
	if got.Files != int64(len(recs)) || got.Bytes != 23 || got.Errors != 0 || got.Deleted != 0 {
		t.Errorf("Stats = %+v, want Files %d, Bytes 23, no Errors nor Deleted", got, len(recs))
	}
}

// statsDeleted: Stats.Files counts records of all types, deletions
// included (see replica.Stats).
func (s *suite) statsDeleted(t *testing.T, tg replica.Target) {
	sr, ok := tg.(replica.StatsReporter)
	if !ok {
		t.Skip("target keeps no Stats")
	}
	j1 := newJob(1, 'F')
	j2 := newJob(2, 'I')
	s.job(t, tg, j1, reg(j1, "/sd/a", 0o644, t0, []byte("a"), 1))
	s.job(t, tg, j2, deleted(j2, "/sd/a"))
	got := sr.Stats()
	if got.Files != 2 || got.Deleted != 1 || got.Bytes != 1 {
		t.Errorf("Stats = %+v, want Files 2 (a file and a deletion record), Deleted 1, Bytes 1", got)
	}
	s.check(t, tg, nil)
}

// ACL entry tags of the Linux xattr form, in their sort order.
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

type aclEntry struct {
	tag  uint16
	perm uint16
	id   string // numeric, or a name kept as written
}

// CanonACL returns the canonical form of an access ACL given as text
// (acl_to_text's long or short form, getfacl output): "u::rw-,u:1234:r--,
// g::r--,m::r--,o::---", entries in the kernel's order, a mask computed
// when missing, and "" for an ACL the mode bits say all of (only user::,
// group:: and other::). Text it cannot parse is returned as "?" followed
// by the text, which compares unequal to anything well-formed.
func CanonACL(text string) string {
	var ents []aclEntry
	for e := range strings.FieldsFuncSeq(text, func(r rune) bool { return r == '\n' || r == ',' }) {
		if i := strings.IndexByte(e, '#'); i >= 0 {
			e = e[:i]
		}
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		e = strings.TrimPrefix(strings.TrimPrefix(e, "default:"), "d:")
		f := strings.Split(e, ":")
		if len(f) == 2 {
			f = []string{f[0], "", f[1]}
		}
		if len(f) != 3 {
			return "?" + text
		}
		var ent aclEntry
		ent.id = strings.TrimSpace(f[1])
		switch strings.TrimSpace(f[0]) {
		case "user", "u":
			ent.tag = aclUserObj
			if ent.id != "" {
				ent.tag = aclUser
			}
		case "group", "g":
			ent.tag = aclGroupObj
			if ent.id != "" {
				ent.tag = aclGroup
			}
		case "mask", "m":
			ent.tag = aclMask
		case "other", "o":
			ent.tag = aclOther
		default:
			return "?" + text
		}
		for _, c := range strings.TrimSpace(f[2]) {
			switch c {
			case 'r':
				ent.perm |= 4
			case 'w':
				ent.perm |= 2
			case 'x':
				ent.perm |= 1
			case '-':
			default:
				return "?" + text
			}
		}
		ents = append(ents, ent)
	}
	return canonACL(ents)
}

// DecodeACLXattr returns the canonical form (see CanonACL) of the value
// of a system.posix_acl_access extended attribute, for harnesses of
// targets on Linux file systems.
func DecodeACLXattr(b []byte) (string, error) {
	if len(b) < 4 || binary.LittleEndian.Uint32(b) != 2 || (len(b)-4)%8 != 0 {
		return "", fmt.Errorf("replicatest: not a POSIX ACL xattr value (%d bytes)", len(b))
	}
	var ents []aclEntry
	for b = b[4:]; len(b) > 0; b = b[8:] {
		e := aclEntry{tag: binary.LittleEndian.Uint16(b), perm: binary.LittleEndian.Uint16(b[2:])}
		if e.tag == aclUser || e.tag == aclGroup {
			e.id = strconv.FormatUint(uint64(binary.LittleEndian.Uint32(b[4:])), 10)
		}
		ents = append(ents, e)
	}
	return canonACL(ents), nil
}

func canonACL(ents []aclEntry) string {
	named, hasMask := false, false
	var mask uint16
	for _, e := range ents {
		switch e.tag {
		case aclUser, aclGroup:
			named = true
			mask |= e.perm
		case aclGroupObj:
			mask |= e.perm
		case aclMask:
			hasMask = true
		}
	}
	if !named && !hasMask {
		return ""
	}
	if !hasMask {
		ents = append(ents, aclEntry{tag: aclMask, perm: mask})
	}
	slices.SortStableFunc(ents, func(a, b aclEntry) int {
		if a.tag != b.tag {
			return int(a.tag) - int(b.tag)
		}
		// Numeric ids in numeric order, as the kernel keeps them.
		ai, aerr := strconv.ParseUint(a.id, 10, 32)
		bi, berr := strconv.ParseUint(b.id, 10, 32)
		if aerr == nil && berr == nil {
			return int(ai) - int(bi)
		}
		return strings.Compare(a.id, b.id)
	})
	tags := map[uint16]string{aclUserObj: "u", aclUser: "u", aclGroupObj: "g", aclGroup: "g", aclMask: "m", aclOther: "o"}
	var b strings.Builder
	for i, e := range ents {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(tags[e.tag])
		b.WriteByte(':')
		b.WriteString(e.id)
		b.WriteByte(':')
		for k, c := range "rwx" {
			if e.perm&(4>>k) != 0 {
				b.WriteRune(c)
			} else {
				b.WriteByte('-')
			}
		}
	}
	return b.String()
}
