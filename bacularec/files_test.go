package bacularec

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// entry is one line of a source-tree manifest (testdata/trees/*.tsv, made by
// scripts/lab/tree-manifest.py from the tree Bacula backed up), or the same
// facts read back from a volume.
type entry struct {
	typ, mode, uid, gid, size, mtime, content, hardlink, xattrs, acl, defacl string
}

func readManifest(t *testing.T, name string) map[string]entry {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "trees", name+".tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]entry{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	sc.Scan() // header
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) != 12 {
			t.Fatalf("%s: bad line %q", name, sc.Text())
		}
		p, err := strconv.Unquote(c[0])
		if err != nil {
			t.Fatalf("%s: path %s: %v", name, c[0], err)
		}
		m[p] = entry{c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11]}
	}
	return m
}

// fixtureJob is what a fixture's job must look like.
type fixtureJob struct {
	name   string
	level  byte
	files  int // attributes records
	stream int // data stream of the regular files, 0 = don't check
}

var fixtureSets = []struct {
	vols   []string
	tree   string // manifest of the tree after the job
	root   string // backed-up directory
	jobs   []fixtureJob
	full   bool // the volumes hold every entry of the tree
	digest string
}{
	{[]string{fixturePlain}, "plain", "/tmp/brc-fixture-src/plain", []fixtureJob{{"PlainMD5", 'F', 54, StreamFileData}}, true, "MD5"},
	{[]string{fixtureGzip}, "plain", "/tmp/brc-fixture-src/plain", []fixtureJob{{"GzipSHA1", 'F', 54, StreamGzipData}}, true, "SHA1"},
	{[]string{"bacula-9.6.7-lzo-md5.vol"}, "plain", "/tmp/brc-fixture-src/plain", []fixtureJob{{"LzoMD5", 'F', 54, StreamCompressedData}}, true, "MD5"},
	{[]string{"bacula-9.6.7-sparse-md5.vol"}, "sparse", "/tmp/brc-fixture-src/sparse", []fixtureJob{{"SparseMD5", 'F', 9, StreamSparseData}}, true, "MD5"},
	{[]string{"bacula-9.6.7-sparse-gzip-sha256.vol"}, "sparse", "/tmp/brc-fixture-src/sparse", []fixtureJob{{"SparseGzip", 'F', 9, StreamSparseGzipData}}, true, "SHA256"},
	{[]string{"bacula-9.6.7-sparse-lzo-sha512.vol"}, "sparse", "/tmp/brc-fixture-src/sparse", []fixtureJob{{"SparseLzo", 'F', 9, StreamSparseCompressed}}, true, "SHA512"},
	{[]string{"bacula-9.6.7-aclxattr-md5.vol"}, "aclxattr", "/tmp/brc-fixture-src/aclxattr", []fixtureJob{{"AclXattr", 'F', 12, 0}}, true, "MD5"},
	{[]string{"bacula-9.6.7-span.1.vol", "bacula-9.6.7-span.2.vol"}, "plain", "/tmp/brc-fixture-src/plain", []fixtureJob{{"Span", 'F', 54, StreamFileData}}, true, "MD5"},
	{[]string{"bacula-9.6.7-smallblock-16k-md5.vol"}, "plain", "/tmp/brc-fixture-src/plain", []fixtureJob{{"SmallBlock", 'F', 54, StreamFileData}}, true, "MD5"},
	{[]string{"bacula-9.6.7-fifo-md5.vol"}, "plain", "/tmp/brc-fixture-src/plain", []fixtureJob{{"FifoJob", 'F', 54, StreamFileData}}, true, "MD5"},
	{[]string{"bacula-9.6.7-accurate-1-full.vol"}, "accurate-1", "/tmp/brc-fixture-src/accurate", []fixtureJob{{"Accurate", 'F', 20, 0}}, true, "MD5"},
	{[]string{"bacula-9.6.7-accurate-2-incr.vol"}, "accurate-2", "/tmp/brc-fixture-src/accurate", []fixtureJob{{"Accurate", 'I', 17, 0}}, false, "MD5"},
	{[]string{"bacula-9.6.7-accurate-3-diff.vol"}, "accurate-3", "/tmp/brc-fixture-src/accurate", []fixtureJob{{"Accurate", 'D', 23, 0}}, false, "MD5"},
}

// readVolumes reads a fixture set into entries keyed by path relative to
// root, the way tree-manifest.py describes a tree.
func readVolumes(t *testing.T, root string, vols []string) (map[string]entry, []*Job, map[string]*File) {
	return readVolumesKeyed(t, root, vols, func(f *File, rel string) string { return rel })
}

// decoders is the SetDecoders value the fixture tests read with; the tests
// run once with each.
var decoders = 0

func readVolumesKeyed(t *testing.T, root string, vols []string, key func(*File, string) string) (map[string]entry, []*Job, map[string]*File) {
	t.Helper()
	var paths []string
	for _, v := range vols {
		paths = append(paths, testdata(t, v))
	}
	fs := NewFiles(NewMultiReader(FileVolumes(paths...)))
	fs.SetDecoders(decoders)
	defer fs.Close()
	got := map[string]entry{}
	files := map[string]*File{}
	var jobs []*Job
	content := map[*File][]byte{}
	for {
		it, err := fs.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch it.Kind {
		case KindNotice:
			t.Errorf("notice: %v", it.Err)
		case KindJobEnd:
			jobs = append(jobs, it.Job)
		case KindFile:
			content[it.File] = nil
		case KindData:
			b := content[it.File]
			if end := it.Offset + int64(len(it.Data)); int64(len(b)) < end {
				b = append(b, make([]byte, end-int64(len(b)))...)
			}
			copy(b[it.Offset:], it.Data)
			content[it.File] = b
		case KindFileEnd:
			f := it.File
			if f.DigestErr != nil || f.Incomplete || len(f.NotDecoded) > 0 {
				t.Errorf("%s: digest %v, incomplete %v, not decoded %v", f.Path, f.DigestErr, f.Incomplete, f.NotDecoded)
			}
			rel := strings.TrimPrefix(strings.TrimSuffix(f.Path, "/"), root)
			rel = strings.TrimPrefix(rel, "/")
			if rel == "" {
				rel = "."
			}
			files[key(f, rel)] = f
			got[key(f, rel)] = entryOf(f, content[f], root)
			delete(content, f)
		}
	}
	return got, jobs, files
}

func entryOf(f *File, data []byte, root string) entry {
	e := entry{
		mode:  fmt.Sprintf("%04o", f.Stat.Mode&0o7777),
		uid:   strconv.FormatUint(uint64(f.Stat.UID), 10),
		gid:   strconv.FormatUint(uint64(f.Stat.GID), 10),
		size:  strconv.FormatInt(f.Stat.Size, 10),
		mtime: strconv.FormatInt(f.Stat.Mtime, 10),
	}
	switch f.Stat.Mode & modeTypeMask {
	case modeRegular:
		e.typ = "reg"
	case modeDir:
		e.typ = "dir"
	case modeSymlink:
		e.typ = "lnk"
		e.content = strconv.Quote(f.Link)
	case modeFIFO:
		e.typ = "fifo"
	case modeChar, modeBlock:
		e.typ = map[uint32]string{modeChar: "chr", modeBlock: "blk"}[f.Stat.Mode&modeTypeMask]
		e.content = fmt.Sprintf("rdev=%d,%d", (f.Stat.Rdev>>8)&0xfff|(f.Stat.Rdev>>32)&^0xfff, f.Stat.Rdev&0xff|(f.Stat.Rdev>>12)&^0xff)
	}
	if f.Type == TypeDeleted {
		e.typ = "deleted"
	}
	if e.typ == "reg" && f.Type != TypeLinkSaved {
		for int64(len(data)) < f.Stat.Size {
			data = append(data, make([]byte, f.Stat.Size-int64(len(data)))...)
		}
		sum := sha256.Sum256(data)
		e.content = hex.EncodeToString(sum[:])
	}
	var xs []string
	for _, x := range f.Xattrs {
		xs = append(xs, x.Name+"="+hex.EncodeToString(x.Value))
	}
	slices.Sort(xs)
	e.xattrs = strings.Join(xs, ",")
	for _, a := range f.ACLs {
		text := aclText(a.Text)
		switch a.Stream {
		case StreamACLLinuxAccess:
			e.acl = text
		case StreamACLLinuxDefault:
			e.defacl = text
		}
	}
	return e
}

// aclText turns acl_to_text output into the manifest's one-line form.
func aclText(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, ",")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Every fixture volume reads back as the tree Bacula backed up: every entry
// with its type, mode, owner, size, mtime, content (sparse holes included),
// link target, hard links, xattrs and ACLs; digests checked; jobs labelled.
func TestFixtures(t *testing.T) {
	for _, n := range []int{0, 4} {
		decoders = n
		t.Run(fmt.Sprintf("decoders=%d", n), testFixtures)
	}
	decoders = 0
}

func testFixtures(t *testing.T) {
	for _, fx := range fixtureSets {
		t.Run(strings.Join(fx.vols, "+"), func(t *testing.T) {
			want := readManifest(t, fx.tree)
			got, jobs, files := readVolumes(t, fx.root, fx.vols)
			if len(jobs) != len(fx.jobs) {
				t.Fatalf("%d jobs, want %d", len(jobs), len(fx.jobs))
			}
			for i, j := range jobs {
				w := fx.jobs[i]
				if !j.Started || !j.OK() || j.Name != w.name || j.Level != w.level || j.Files != w.files ||
					j.JobFiles != uint32(w.files) || j.JobID == 0 || j.Type != 'B' || j.StartTime.IsZero() || j.EndTime.Before(j.StartTime) {
					t.Errorf("job %+v, want %+v", j, w)
				}
			}
			checked := 0
			for rel, g := range got {
				f := files[rel]
				if f.Type == TypeDeleted {
					if _, ok := want[rel]; ok {
						t.Errorf("%s: deleted in the volume, present in the tree", rel)
					}
					continue
				}
				w, ok := want[rel]
				if !ok {
					t.Errorf("%s: in the volume, not in the tree", rel)
					continue
				}
				if w.typ == "reg" && f.Digest != nil && f.Digest.Algo != fx.digest {
					t.Errorf("%s: digest %s, want %s", rel, f.Digest.Algo, fx.digest)
				}
				if w.typ == "reg" && f.Type != TypeLinkSaved && f.Stat.Size > 0 {
					if f.Digest == nil || !f.DigestChecked {
						t.Errorf("%s: digest not checked (%v)", rel, f.Digest)
					}
					if s := fx.jobs[0].stream; s != 0 && f.DataStream != s {
						t.Errorf("%s: data stream %d, want %d", rel, f.DataStream, s)
					}
				}
				if f.Type == TypeLinkSaved {
					// Content comes from the first name; both are in one group.
					first := strings.TrimPrefix(strings.TrimPrefix(f.Link, fx.root), "/")
					if w.hardlink == "-" || want[first].hardlink != w.hardlink {
						t.Errorf("%s: hard link to %s, groups %s and %s", rel, first, w.hardlink, want[first].hardlink)
					}
					g.content = w.content
				}
				if w.typ == "dir" {
					g.size = w.size // directory sizes depend on the file system
				}
				g.hardlink = w.hardlink
				g.xattrs, g.acl, g.defacl = dash(g.xattrs), dash(g.acl), dash(g.defacl)
				if g.content == "" {
					g.content = "-"
				}
				if g != w {
					t.Errorf("%s:\n got %+v\nwant %+v", rel, g, w)
				}
				checked++
			}
			if fx.full {
				for rel := range want {
					if _, ok := got[rel]; !ok {
						t.Errorf("%s: in the tree, not in the volume", rel)
					}
				}
			}
			if checked == 0 {
				t.Fatal("nothing compared")
			}
		})
	}
}

// An accurate Incremental records the files deleted since the previous job.
func TestFixtureDeletedFiles(t *testing.T) {
	before := readManifest(t, "accurate-1")
	after := readManifest(t, "accurate-2")
	_, _, files := readVolumes(t, "/tmp/brc-fixture-src/accurate", []string{"bacula-9.6.7-accurate-2-incr.vol"})
	var deleted, wantDeleted []string
	for rel, f := range files {
		if f.Type == TypeDeleted {
			deleted = append(deleted, rel)
			if f.Stat.Mtime == 0 || f.Stat.Mode != 0 || f.Written != 0 {
				t.Errorf("%s: deletion record %+v", rel, f.Stat)
			}
		}
	}
	for rel := range before {
		if _, ok := after[rel]; !ok {
			wantDeleted = append(wantDeleted, rel)
		}
	}
	slices.Sort(deleted)
	slices.Sort(wantDeleted)
	// Bacula records a deleted directory and each file it held.
	for _, w := range wantDeleted {
		if !slices.Contains(deleted, w) {
			t.Errorf("%s deleted from the tree, no deletion record (have %q)", w, deleted)
		}
	}
	if len(deleted) == 0 {
		t.Fatal("no deletion records")
	}
}

// Reading only the second volume of a set: the job's start is not there and
// its first records are tails of records on the first volume. They are
// reported, never passed off as content.
func TestContinuationVolumeAlone(t *testing.T) {
	fs := NewFiles(NewMultiReader(FileVolumes(testdata(t, "bacula-9.6.7-span.2.vol"))))
	var orphans, files int
	var job *Job
	for {
		it, err := fs.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch it.Kind {
		case KindJobStart:
			job = it.Job
		case KindNotice:
			if !errors.Is(it.Err, ErrOrphanData) {
				t.Errorf("notice %v", it.Err)
			}
			orphans++
		case KindFileEnd:
			files++
			if it.File.DigestErr != nil {
				t.Errorf("%s: %v", it.File.Path, it.File.DigestErr)
			}
		}
	}
	if job == nil || job.Started || !job.Ended || job.Status != 'T' || job.JobID == 0 {
		t.Fatalf("job %+v", job)
	}
	if orphans == 0 || files == 0 || files >= int(job.JobFiles) {
		t.Fatalf("%d orphan notices, %d files of %d", orphans, files, job.JobFiles)
	}
}

// A changed byte in a file's content is a digest mismatch on that file, and
// reading goes on.
func TestDigestMismatch(t *testing.T) {
	recs := recordsOf(t, fixturePlain)
	var victim int32
	for i, r := range recs {
		if r.stream == StreamFileData && len(r.data) > 100 {
			recs[i].data[50] ^= 1
			victim = r.fi
			break
		}
	}
	fs := NewFiles(NewReader(bytesReader(reblock(recs, 2, 64512, nil))))
	var bad []*File
	n := 0
	for {
		it, err := fs.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if it.Kind == KindFileEnd {
			n++
			if it.File.DigestErr != nil {
				bad = append(bad, it.File)
			}
		}
	}
	if len(bad) != 1 || bad[0].FileIndex != victim || n != 54 {
		t.Fatalf("%d files, mismatches %v", n, bad)
	}
	var de *DigestError
	if !errors.As(bad[0].DigestErr, &de) || !errors.Is(bad[0].DigestErr, ErrDigestMismatch) || de.Algo != "MD5" || de.Path != bad[0].Path {
		t.Fatalf("digest error %#v", bad[0].DigestErr)
	}
}

// Two jobs written at the same time into one volume, their blocks
// interleaved: each reads back as the tree it backed up, one with MD5
// digests and one without.
func TestFixtureInterleaved(t *testing.T) {
	want := readManifest(t, "plain")
	got, jobs, files := readVolumesKeyed(t, "/tmp/brc-fixture-src/plain", []string{"bacula-9.6.7-interleave-2jobs.vol"},
		func(f *File, rel string) string { return f.Job.Name + " " + rel })
	if len(jobs) != 2 {
		t.Fatalf("%d jobs", len(jobs))
	}
	for _, j := range jobs {
		if !j.OK() || j.Files != 54 || j.Session.ID != j.JobID {
			t.Errorf("job %+v", j)
		}
	}
	for _, name := range []string{"InterleaveA", "InterleaveB"} {
		n := 0
		for rel, w := range want {
			g, ok := got[name+" "+rel]
			if !ok {
				t.Errorf("%s: %s missing", name, rel)
				continue
			}
			f := files[name+" "+rel]
			if w.typ == "reg" && f.Type != TypeLinkSaved && g.content != w.content {
				t.Errorf("%s: %s: content %s, want %s", name, rel, g.content, w.content)
			}
			if g.mode != w.mode || g.uid != w.uid || g.mtime != w.mtime {
				t.Errorf("%s: %s: %+v, want %+v", name, rel, g, w)
			}
			hasDigest := f.Digest != nil
			if wantDigest := name == "InterleaveA" && w.typ == "reg"; hasDigest != wantDigest && f.Type != TypeLinkSaved {
				t.Errorf("%s: %s: digest %v", name, rel, f.Digest)
			}
			n++
		}
		if n != len(want) {
			t.Errorf("%s: %d of %d entries", name, n, len(want))
		}
	}
}
