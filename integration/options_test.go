//go:build integration

package integration

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// optionSet is a lab job backing up a make-tree.sh tree with some FileSet
// options (scripts/lab/up.sh's FileSet table).
type optionSet struct {
	name   string
	job    string
	tree   string // SRC_ROOT/<tree> backed up by the job's FileSet
	digest bool   // signature = ... (every regular file with data carries a digest)
	xattrs bool   // aclsupport + xattrsupport: bextract drops those streams
}

var optionSets = []optionSet{
	{"plain+MD5", "TreeMD5", "tree", true, false},
	{"no options (defaults, no digest)", "PlainNoSig", "plain", false, false},
	{"GZIP+SHA1", "TreeGzip", "tree", true, false},
	{"LZO+MD5", "TreeLzo", "tree", true, false},
	{"sparse+MD5", "SparseMD5", "sparse", true, false},
	{"sparse+GZIP+SHA256", "SparseGzip", "sparse", true, false},
	{"sparse+LZO+SHA512", "SparseLzo", "sparse", true, false},
	{"ACL+xattr+MD5", "AclXattr", "aclxattr", true, true},
	{"GZIP+SHA1+sparse+ACL+xattr", "TreeAll", "tree", true, true},
	{"small blocks (SmallDev1, 16384)", "SmallBlock", "plain", true, false},
	{"FIFO device capture", "FifoJob", "plain", true, false},
}

// TestOptionSets backs up a make-tree.sh tree with each option set, then
// extracts the job's volume(s) with bextract and with replicad and
// compares: replicad == source (everything the job saved, access times
// included) and replicad == bextract (everything, access times and
// st_blocks <= bextract's included), except where bextract drops data:
// ACL (streams 1007/1008) and xattr (1998) streams, which must be missing
// from bextract's tree exactly where the source has them.
func TestOptionSets(t *testing.T) {
	l := needLab(t)
	for _, c := range optionSets {
		t.Run(c.name, func(t *testing.T) { l.optionSet(t, c) })
	}
}

func (l *labEnv) optionSet(t *testing.T, c optionSet) {
	srcDir := l.ensureTree(t, c.tree)
	src := sourceSnapshot(t, srcDir) // before the backup: what the attributes record
	checkSourceFeatures(t, src)
	start := time.Now().Unix()
	j := l.backup(t, c.job, "Full")
	if len(j.Vols) != 1 {
		t.Errorf("%s: %d volumes, want 1", j, len(j.Vols))
	}
	if j.Files != len(src.Entries) {
		t.Errorf("%s: catalog JobFiles=%d, source tree has %d entries", j, j.Files, len(src.Entries))
	}
	l.checkLs(t, j)

	rxOut, bxOut := l.outDir(t, "replicad"), l.outDir(t, "bextract")
	s := l.replicadOK(t, rxOut, j.volPaths()...)
	b := l.bextract(t, j.VolDir, bxOut, j.Vols, "")
	rx, bx := sub(t, rxOut, srcDir), sub(t, bxOut, srcDir)

	// replicad's own report
	if s.Jobs != 1 || s.JobsOK != 1 {
		t.Errorf("replicad: %d jobs, %d OK, want 1/1", s.Jobs, s.JobsOK)
	}
	if s.entries() != j.Files {
		t.Errorf("replicad restored %d entries, catalog JobFiles=%d", s.entries(), j.Files)
	}
	if want := map[bool]int{true: s.Regular}[c.digest]; s.DigestsChecked != want {
		t.Errorf("replicad checked %d digests, want %d (digest option %v, %d regular files)", s.DigestsChecked, want, c.digest, s.Regular)
	}
	if b.Restored != j.Files {
		t.Errorf("bextract restored %d files, catalog JobFiles=%d", b.Restored, j.Files)
	}

	rb := vsBextract(t, "replicad vs bextract", rx, bx, c.xattrs, start)
	wantUnknown := map[string]int{}
	if c.xattrs {
		for _, e := range src.Entries {
			other := false
			for k := range e.Xattrs {
				switch k {
				case "system.posix_acl_access":
					wantUnknown["1008"]++
				case "system.posix_acl_default":
					wantUnknown["1007"]++
				default:
					other = true
				}
			}
			if other {
				wantUnknown["1998"]++
			}
		}
	}
	if !maps.Equal(b.Unknown, wantUnknown) {
		t.Errorf("bextract 'Unknown stream=N ignored' counts %v, want %v (one per ACL / xattr stream of the source)", b.Unknown, wantUnknown)
	}
	if len(b.Errors) > 0 {
		t.Errorf("bextract reported errors:\n%s", strings.Join(b.Errors, "\n"))
	}
	rs := expectDiffs(t, "replicad vs source", rx, src, cmpOpt{Atime: true, Xattrs: c.xattrs}, nil, nil)
	if !c.xattrs {
		for p, e := range rx.Entries {
			if len(e.Xattrs) > 0 {
				t.Errorf("replicad restored xattrs on %q that the job did not save: %s", p, fmtXattrs(e.Xattrs))
			}
		}
	}
	files, dirs, links, specials, withX, bytes := src.counts()
	t.Logf("OPTION SET %q: job %d %s, volume %s; source: %d paths (%d files, %d dirs, %d symlinks, %d special; %d with xattrs/ACLs; %d bytes); "+
		"replicad vs bextract: %s; replicad vs source: %s; digests checked %d; allocated 512-B blocks replicad=%d bextract=%d source=%d; "+
		"bextract ignored streams: %s",
		c.name, j.ID, c.job, strings.Join(j.Vols, ","), len(src.Entries), files, dirs, links, specials, withX, bytes,
		rb, rs, s.DigestsChecked, rx.regBlocks(), bx.regBlocks(), src.regBlocks(), fmtCounts(b.Unknown))
}

func fmtCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var s []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		s = append(s, k+"x"+strconv.Itoa(m[k]))
	}
	return strings.Join(s, " ")
}

// vsBextract compares replicad's tree rx with bextract's bx of the same
// volumes: every field, access times and st_blocks (rx <= bx) included,
// except where bextract is not faithful:
//   - xattrJob (aclsupport/xattrsupport): bextract 9.6.7 ignores the ACL
//     and xattr streams, so every path with xattrs in rx must lack them
//     all in bx (expected differences; none other allowed);
//   - hard links: bextract applies the attributes of every FT_LNKSAVED
//     record to the shared inode, and the FD stat'ed those names after it
//     had read the content through the first name, so they carry the
//     backup's own access time (relatime). replicad keeps the first
//     record's atime, the inode's atime before the backup (checked against
//     the source by the callers). So the atime of hard-linked files may
//     differ, bextract's being a time >= backupStart.
func vsBextract(t *testing.T, what string, rx, bx *tree, xattrJob bool, backupStart int64) cmpResult {
	t.Helper()
	want, allow := map[string]bool{}, map[string]bool{}
	for p, e := range rx.Entries {
		if xattrJob && len(e.Xattrs) > 0 {
			want[p+"\txattrs"] = true
			if b := bx.Entries[p]; b != nil && len(b.Xattrs) != 0 {
				t.Errorf("%s: bextract restored xattrs of %q: %s (expected it to ignore the streams)", what, p, fmtXattrs(b.Xattrs))
			}
		}
		if e.Link != "" {
			allow[p+"\tatime"] = true
		}
	}
	r := expectDiffs(t, what, rx, bx, cmpOpt{Atime: true, Xattrs: true, BlocksLE: true}, want, allow)
	for _, d := range r.diffs {
		if d.Field == "atime" && allow[d.key()] {
			if b := bx.Entries[d.Path]; b.Atime < backupStart-1 {
				t.Errorf("%s: hard link %q: bextract's atime %d predates the backup (%d): not the FD's own access", what, d.Path, b.Atime, backupStart)
			}
		}
	}
	return r
}
