//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTypeSwapChain checks what real Bacula volumes can do with paths that
// change type between an accurate Full and Incremental (job Accurate,
// FileSet FS-Accurate = SRC_ROOT/accurate):
//
//   - d/link is a symlink to an absolute directory OUTSIDE (outside every
//     extraction root) in the Full; before the Incremental it is replaced
//     by a real directory holding a file f. Extracting the Full then the
//     Incremental into the same DIR re-creates DIR/.../d/link -> OUTSIDE
//     first, and the Incremental's d/link/f resolves through it: the
//     hostile case. replicad must never write OUTSIDE/f (strict), whether
//     it extracts both volumes in one run or in two runs into the same
//     DIR. Restoring f inside DIR is the faithful outcome; refusing it (an
//     "unsafe path" error, exit 1) is accepted. bextract 9.6.7 follows
//     the symlink and writes OUTSIDE/f: asserted, it shows the case is a
//     real escape.
//   - d/swap is a directory (holding g) in the Full and a symlink in the
//     Incremental: a benign type change.
//
// Everything else of the extraction must equal the Incremental's source
// tree. Bacula records each type change as the new entry plus a deletion
// record for the old one ("d/link" without, "d/swap/" with the directory
// slash), after it.
func TestTypeSwapChain(t *testing.T) {
	l := needLab(t)
	outside, err := os.MkdirTemp("", "openbrc-outside-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(outside)
	srcDir := l.srcTree("accurate")
	l.stage["accurate"] = 0
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.RemoveAll(srcDir))
	must(os.MkdirAll(filepath.Join(srcDir, "d", "swap"), 0o755))
	must(os.WriteFile(filepath.Join(srcDir, "keep.txt"), []byte("kept\n"), 0o644))
	must(os.WriteFile(filepath.Join(srcDir, "d", "swap", "g"), []byte("g in the Full\n"), 0o644))
	must(os.Symlink(outside, filepath.Join(srcDir, "d", "link")))
	F := l.backup(t, "Accurate", "Full")

	time.Sleep(1100 * time.Millisecond) // the Incremental selects by ctime (whole seconds) > the Full's start
	must(os.Remove(filepath.Join(srcDir, "d", "link")))
	must(os.Mkdir(filepath.Join(srcDir, "d", "link"), 0o755))
	payload := []byte("written through the swapped symlink?\n")
	must(os.WriteFile(filepath.Join(srcDir, "d", "link", "f"), payload, 0o644))
	must(os.RemoveAll(filepath.Join(srcDir, "d", "swap")))
	must(os.Symlink("../keep.txt", filepath.Join(srcDir, "d", "swap")))
	src2 := sourceSnapshot(t, srcDir)
	I := l.backup(t, "Accurate", "Incremental")

	// The volumes hold what the scenario needs.
	lsF, lsI := l.checkLs(t, F), l.checkLs(t, I)
	link, f, swap := srcDir+"/d/link", srcDir+"/d/link/f", srcDir+"/d/swap"
	for _, c := range []struct {
		ls        lsResult
		j         job
		typ, path string
	}{{lsF, F, "FT_LNK", link}, {lsF, F, "FT_DIREND", swap + "/"}, {lsI, I, "FT_REG", f},
		{lsI, I, "FT_DIREND", link + "/"}, {lsI, I, "FT_LNK", swap}} {
		if !slices.Contains(c.ls.paths(uint32(c.j.ID), c.typ), c.path) {
			t.Fatalf("%s has no %s %s: %q", c.j, c.typ, c.path, c.ls.paths(uint32(c.j.ID)))
		}
	}
	t.Logf("deletion records of the Incremental: %q", lsI.paths(uint32(I.ID), "FT_DELETED"))

	checkOutside := func(what string) {
		t.Helper()
		ents, err := os.ReadDir(outside)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(ents) != 0 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("%s WROTE OUTSIDE its output directory: %s now holds %q", what, outside, names)
		}
	}
	// judge checks a replicad result (Full then Incremental in out).
	// Accepted: the faithful tree (== the Incremental's source), or the
	// same with d/link/f refused as an unsafe path (exit 1). The rest is
	// a known bug (see knownBug below) or a failure.
	judge := func(what, out string, r replicadResult) {
		t.Helper()
		checkOutside(what)
		_, diffs := compareTrees(sub(t, out, srcDir), src2, cmpOpt{Xattrs: true})
		absent := map[string]bool{}
		for _, d := range diffs {
			if d.Field == "presence" && d.A == "absent" {
				absent[d.Path] = true
			}
		}
		errs := 0
		refusedF, swapRefused := false, false
		for _, line := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
			switch {
			case strings.Contains(line, "some files were not extracted faithfully"):
			case strings.Contains(line, "create "+f+": unsafe path"):
				refusedF = true
				errs++
			case strings.Contains(line, "symlink "+swap+": non-empty directory in the way"):
				swapRefused = true
				errs++
			case line != "":
				t.Errorf("%s: unexpected error: %s", what, line)
			}
		}
		if errs != int(r.Sum.Errors) || (r.Exit == 0) != (errs == 0) {
			t.Errorf("%s: exit %d, %d errors in the summary, %d error lines", what, r.Exit, r.Sum.Errors, errs)
		}
		var bug []string
		for _, d := range diffs {
			switch {
			case d.Path == "d/link/f" && absent[d.Path] && (refusedF || absent["d/link"]):
				if refusedF {
					t.Logf("%s: refused d/link/f (%s): accepted", what, firstLine(r.Stderr, "unsafe path"))
				}
			case (d.Path == "d/link" || d.Path == "d/swap") && absent[d.Path]:
				bug = append(bug, d.String())
			default:
				t.Errorf("%s: unexpected difference from the Incremental's source: %s", what, d)
			}
		}
		if absent["d/link"] || absent["d/swap"] {
			knownBug(t, "deletion-type", "%s: %s. A deletion record removes whatever is at its path, though its "+
				"trailing slash says which type it deletes: record %q (no slash: the Full's symlink) removed the "+
				"directory d/link/ that the Incremental had just restored (with what it held); record %q (a "+
				"directory) removes d/swap whatever the Incremental put there", what, strings.Join(bug, "; "), link, swap+"/")
		}
		if swapRefused {
			knownBug(t, "dir-to-symlink", "%s: the Incremental's symlink d/swap was refused (\"non-empty directory in "+
				"the way\": the Full's directory d/swap/ with g, whose deletion records come at the end of the job); "+
				"the source has the symlink (bextract fails the same way: \"could not be replaced. ERR=Is a directory\")", what)
		}
		t.Logf("HOSTILE %s: exit %d, %d differences from the Incremental's source (faithful: %v); %s untouched",
			what, r.Exit, len(diffs), len(diffs) == 0 && r.Exit == 0, outside)
	}

	one := l.outDir(t, "replicad-one-run")
	judge("replicad extract FULL INCR", one, l.replicadRun(t, one, append(F.volPaths(), I.volPaths()...)...))

	// Two runs into the same directory: the symlink is on disk when the
	// Incremental's run starts.
	two := l.outDir(t, "replicad-two-runs")
	l.replicadOK(t, two, F.volPaths()...)
	if tg, err := os.Readlink(filepath.Join(two, srcDir, "d", "link")); err != nil || tg != outside {
		t.Fatalf("replicad did not restore the Full's symlink: %q %v", tg, err)
	}
	judge("replicad extract FULL; replicad extract INCR", two, l.replicadRun(t, two, I.volPaths()...))

	// bextract, for the record: it follows the symlink.
	bx := l.outDir(t, "bextract")
	l.bextract(t, F.VolDir, bx, append(append([]string{}, F.Vols...), I.Vols...), "")
	got, err := os.ReadFile(filepath.Join(outside, "f"))
	if err != nil || string(got) != string(payload) {
		t.Errorf("bextract did not write %s/f through the symlink (%q, %v): the scenario no longer shows an escape with this Bacula", outside, got, err)
	} else {
		st, _ := os.Stat(outside)
		t.Logf("HOSTILE bextract FULL INCR: followed d/link -> %s and wrote %s/f outside its output directory, "+
			"and set that directory's mtime to %s (expected of bextract 9.6.7)", outside, outside, st.ModTime().UTC().Format(time.DateTime))
	}
}

// knownBug reports a replicad bug that is understood and reported to the
// library's maintainers: logged loudly, failed only with
// OPENBRC_STRICT_KNOWN_BUGS=1. When it is fixed, the faithful outcome
// passes the test without this call.
func knownBug(t *testing.T, id, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("OPENBRC_STRICT_KNOWN_BUGS") != "" {
		t.Errorf("KNOWN REPLICAD BUG [%s]: %s", id, msg)
		return
	}
	t.Logf("KNOWN REPLICAD BUG [%s] (not failed; OPENBRC_STRICT_KNOWN_BUGS=1 fails it): %s", id, msg)
}

func firstLine(s, sub string) string {
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
