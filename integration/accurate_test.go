//go:build integration

package integration

import (
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestAccurateChain runs job TreeAccurate (Accurate = yes, MD5, ACL and
// xattr support) as Full on a make-tree.sh stage-1 tree, Incremental on
// stage 2 (files modified, deleted, added, renamed, chmod/chown, an xattr
// changed) and Differential on stage 3 (a hard link broken, a stage-2 file
// deleted, ...). Checks:
//   - Full alone: replicad == stage-1 source, == bextract (but ACL/xattrs);
//   - replicad over Full+Incremental == stage-2 source, over
//     Full+Differential == stage-3 source: deleted paths removed;
//   - bextract over the same volumes leaves exactly the deleted paths (with
//     their Full content), which "replicad -keep-deleted" reproduces.
//
// Access times are not compared across a chain: files that the later jobs
// do not carry keep the atime recorded by the Full, and the live tree's
// atimes were changed by the Full itself reading the files.
func TestAccurateChain(t *testing.T) {
	l := needLab(t)
	const tr = "tree"
	srcDir := l.srcTree(tr)

	var snaps [4]*tree
	var jobs [4]job
	var startF int64
	levels := [4]string{"", "Full", "Incremental", "Differential"}
	for stage := 1; stage <= 3; stage++ {
		l.makeTree(t, tr, stage)
		snaps[stage] = sourceSnapshot(t, srcDir)
		if stage == 1 {
			checkSourceFeatures(t, snaps[1])
		}
		if stage == 1 {
			startF = time.Now().Unix()
		}
		jobs[stage] = l.backup(t, "TreeAccurate", levels[stage])
		if len(jobs[stage].Vols) != 1 {
			t.Fatalf("%s: want 1 volume", jobs[stage])
		}
	}
	F, I, D := jobs[1], jobs[2], jobs[3]
	if F.Level != "F" || I.Level != "I" || D.Level != "D" {
		t.Fatalf("levels %s %s %s, want F I D (did the director upgrade a level?)", F.Level, I.Level, D.Level)
	}

	deleted2 := missingFrom(snaps[1], snaps[2]) // deleted between the Full and the Incremental
	deleted3 := missingFrom(snaps[1], snaps[3]) // between the Full and the Differential
	if len(deleted2) == 0 || len(deleted3) == 0 {
		t.Fatalf("make-tree.sh stages delete nothing? %v %v", deleted2, deleted3)
	}
	t.Logf("paths deleted since the Full: stage 2 %q; stage 3 %q", deleted2, deleted3)

	// ls -json: file lines == JobFiles; the later jobs carry one deletion
	// record per path deleted since the Full.
	ls := map[int]lsResult{}
	for _, j := range jobs[1:] {
		r := l.checkLs(t, j)
		ls[j.ID] = r
		dels := r.paths(uint32(j.ID), "FT_DELETED")
		var want []string
		switch j.Level {
		case "I":
			want = deleted2
		case "D":
			want = deleted3
		}
		if got := relPaths(dels, srcDir); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: deletion records %q, want %q", j, got, want)
		}
	}

	// The Full alone.
	rF, bF := l.outDir(t, "replicad-F"), l.outDir(t, "bextract-F")
	l.replicadOK(t, rF, F.volPaths()...)
	l.bextract(t, F.VolDir, bF, F.Vols, "")
	rx, bx := sub(t, rF, srcDir), sub(t, bF, srcDir)
	r1 := expectDiffs(t, "Full: replicad vs stage-1 source", rx, snaps[1], cmpOpt{Atime: true, Xattrs: true}, nil, nil)
	r2 := vsBextract(t, "Full: replicad vs bextract", rx, bx, true, startF)
	t.Logf("CHAIN Full: job %d, volume %v; replicad vs source: %s; replicad vs bextract: %s", F.ID, F.Vols, r1, r2)

	chain := func(name string, later job, want *tree, deleted []string) {
		t.Run(name, func(t *testing.T) {
			vols := append(F.volPaths(), later.volPaths()...)
			r, b, rk := l.outDir(t, "replicad"), l.outDir(t, "bextract"), l.outDir(t, "replicad-keep-deleted")
			s := l.replicadOK(t, r, vols...)
			// A deletion record under a directory removed by an earlier
			// record has nothing left to remove.
			dels := ls[later.ID].paths(uint32(later.ID), "FT_DELETED")
			if n := topDeletions(dels); s.Deleted != n {
				t.Errorf("replicad removed %d paths for the %d deletion records, want %d (the others are below a removed directory)", s.Deleted, len(dels), n)
			}
			sk := l.replicadOK(t, rk, append([]string{"-keep-deleted"}, vols...)...)
			if sk.Deleted != 0 || sk.Skipped != len(dels) {
				t.Errorf("replicad -keep-deleted: %d deleted, %d skipped; want 0 and %d (the deletion records)", sk.Deleted, sk.Skipped, len(dels))
			}
			br := l.bextract(t, F.VolDir, b, append(append([]string{}, F.Vols...), later.Vols...), "")
			if len(br.Errors) > 0 {
				t.Errorf("bextract errors:\n%s", strings.Join(br.Errors, "\n"))
			}
			rx, bx, rkx := sub(t, r, srcDir), sub(t, b, srcDir), sub(t, rk, srcDir)

			// replicad honours the deletion records: its tree is the source.
			r1 := expectDiffs(t, name+": replicad vs source", rx, want, cmpOpt{Xattrs: true}, nil, nil)

			// bextract (1) ignores the deletion records: the deleted paths
			// are left; (2) drops ACLs/xattrs; (3) leaves the extraction
			// time as mtime of the directories that the later job does not
			// carry but in which it re-created a file (it unlinks and
			// re-creates the file; only the directory's own record, absent
			// here, would reset the time). replicad -keep-deleted
			// reproduces (1) only.
			dirTimes := map[string]bool{}
			carried := map[string]bool{}
			for _, p := range relPaths(ls[later.ID].paths(uint32(later.ID), "FT_DIREND"), srcDir) {
				carried[p] = true
			}
			for _, p := range relPaths(ls[later.ID].paths(uint32(later.ID), "FT_REG", "FT_REGE", "FT_LNK", "FT_LNKSAVED", "FT_FIFO", "FT_SPEC"), srcDir) {
				if d := parent(p); !carried[d] {
					dirTimes[d+"\tmtime"] = true
				}
			}
			wantB, wantK := maps.Clone(dirTimes), maps.Clone(dirTimes)
			for _, p := range deleted {
				wantB[p+"\tpresence"] = true
			}
			for p, e := range rkx.Entries {
				if len(e.Xattrs) > 0 {
					wantK[p+"\txattrs"] = true
					if rx.Entries[p] != nil {
						wantB[p+"\txattrs"] = true
					}
				}
			}
			t.Logf("%s: directories whose mtime bextract leaves at extraction time: %q", name, sortedKeys(dirTimes))
			r2 := expectDiffs(t, name+": replicad vs bextract", rx, bx, cmpOpt{Xattrs: true, BlocksLE: true}, wantB, nil)
			r3 := expectDiffs(t, name+": replicad -keep-deleted vs bextract", rkx, bx, cmpOpt{Xattrs: true, BlocksLE: true}, wantK, nil)

			// What bextract left of the deleted paths is the Full's
			// content. Hard-link identity is not compared: a name left
			// behind no longer shares the inode of a sibling that the later
			// job re-created (stage 3 deletes hard/b.txt, a second name of
			// hard/a.txt, which the Differential carries again).
			full, left := partial(snaps[1], deleted), partial(bx, deleted)
			r4 := expectDiffs(t, name+": deleted paths left by bextract vs the Full's source", left, full, cmpOpt{}, nil, nil)
			t.Logf("CHAIN %s: jobs %d+%d, volumes %v; replicad removed %d paths for %d deletion records; "+
				"replicad vs source: %s; replicad vs bextract: %s; replicad -keep-deleted vs bextract: %s; deleted paths left by bextract vs the Full: %s",
				name, F.ID, later.ID, append(append([]string{}, F.Vols...), later.Vols...), s.Deleted, len(dels), r1, r2, r3, r4)
		})
	}
	chain("Full+Incremental", I, snaps[2], deleted2)
	chain("Full+Differential", D, snaps[3], deleted3)
}

// partial copies the entries of paths from tr, without hard-link groups.
func partial(tr *tree, paths []string) *tree {
	c := &tree{Root: tr.Root, Entries: map[string]*entry{}, BlockSectors: tr.BlockSectors}
	for _, p := range paths {
		if e := tr.Entries[p]; e != nil {
			x := *e
			x.Link = ""
			c.Entries[p] = &x
		}
	}
	return c
}

// topDeletions counts the deletion records (in order) that are not below
// a directory removed by an earlier one.
func topDeletions(recs []string) int {
	n := 0
	var gone []string
	for _, p := range recs {
		below := false
		for _, g := range gone {
			if strings.HasPrefix(p, g) {
				below = true
			}
		}
		if !below {
			n++
		}
		if strings.HasSuffix(p, "/") {
			gone = append(gone, p)
		}
	}
	return n
}

func parent(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return "."
}

func sortedKeys(m map[string]bool) []string {
	return slices.Sorted(maps.Keys(m))
}

func (l *labEnv) srcTree(name string) string { return l.src + "/" + name }

// missingFrom lists the paths of a that b lacks, sorted.
func missingFrom(a, b *tree) []string {
	var p []string
	for k := range a.Entries {
		if _, ok := b.Entries[k]; !ok {
			p = append(p, k)
		}
	}
	sort.Strings(p)
	return p
}

// relPaths turns absolute backed-up paths under root (directories with a
// trailing slash, as Bacula records them) into tree-relative paths, sorted.
func relPaths(abs []string, root string) []string {
	var r []string
	for _, p := range abs {
		p = strings.TrimSuffix(p, "/")
		switch {
		case p == root:
			r = append(r, ".")
		case strings.HasPrefix(p, root+"/"):
			r = append(r, p[len(root)+1:])
		default:
			r = append(r, "OUTSIDE:"+p)
		}
	}
	sort.Strings(r)
	return r
}
