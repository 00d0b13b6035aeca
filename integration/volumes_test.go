//go:build integration

package integration

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestInterleavedJobs runs InterleaveA (FS-PlainMD5) and InterleaveB
// (FS-PlainNoSig) at the same time on client lab-fd2 (small network
// buffers, bandwidth-limited) into one volume of pool Multi, so that their
// blocks alternate. Both back up SRC_ROOT/plain. Checks:
//   - the volume really interleaves the two sessions (file records of the
//     jobs alternate in "replicad ls -json"), and ls counts each job's
//     files as the catalog does;
//   - "replicad extract -job N" == bextract with job N's bootstrap (BSR) ==
//     the source, for each job;
//   - the whole volume without selection: replicad == the source (both jobs
//     saved the same tree; atimes not compared, the two jobs read the files
//     concurrently and record different access times), while bextract
//     without a bsr mixes the sessions: wrong file contents/sizes (its
//     "File size of restored file ... not correct" errors).
func TestInterleavedJobs(t *testing.T) {
	l := needLab(t)
	srcDir := l.ensureTree(t, "plain")
	src := sourceSnapshot(t, srcDir)
	start := time.Now().Unix()

	// Start A, wait until its data flows, then start B: started together,
	// the SD may refuse B's device reservation while A mounts the volume
	// and the director then holds B until A ends (no interleaving).
	type res struct {
		id  int
		out string
		err error
	}
	ca, cb := make(chan res, 1), make(chan res, 1)
	go func() { id, out, err := l.runBackup("InterleaveA", "Full"); ca <- res{id, out, err} }()
	writing := regexp.MustCompile(`Writing: Full Backup job InterleaveA JobId=\d+[^\n]*\n(?:[^\n]*\n){2}\s*Files=[\d,]+ Bytes=([\d,]+)`)
	deadline := time.Now().Add(90 * time.Second)
	var aDone *res
	for {
		out := l.bconsole(t, "status storage=Small1")
		if m := writing.FindStringSubmatch(out); m != nil && m[1] != "0" {
			t.Logf("InterleaveA is writing (%s bytes so far): starting InterleaveB", m[1])
			break
		}
		select {
		case r := <-ca:
			aDone = &r
		default:
		}
		if aDone != nil || time.Now().After(deadline) {
			t.Fatalf("InterleaveA never seen writing data (ended: %v)", aDone != nil)
		}
		time.Sleep(300 * time.Millisecond)
	}
	go func() { id, out, err := l.runBackup("InterleaveB", "Full"); cb <- res{id, out, err} }()
	ra, rb := <-ca, <-cb
	for _, r := range []res{ra, rb} {
		if r.err != nil {
			t.Fatalf("%v\n%s", r.err, r.out)
		}
	}
	A, B := l.jobInfo(t, ra.id), l.jobInfo(t, rb.id)
	for _, j := range []job{A, B} {
		if j.Status != "T" {
			t.Fatalf("%s: JobStatus %s", j, j.Status)
		}
		t.Logf("backup: %s", j)
	}
	if len(A.Vols) != 1 || len(B.Vols) != 1 || A.Vols[0] != B.Vols[0] {
		t.Fatalf("the jobs are not in one volume: %v %v", A.Vols, B.Vols)
	}
	vol := A.volPaths()

	ls := l.lsJSON(t, vol...)
	switches := 0
	var last uint32
	for _, f := range ls.Records {
		if last != 0 && f.JobID != last {
			switches++
		}
		last = f.JobID
	}
	for _, j := range []job{A, B} {
		if ls.Files[uint32(j.ID)] != j.Files || ls.JobEnd[uint32(j.ID)] != uint32(j.Files) {
			t.Errorf("ls -json %v: job %d: %d file lines, job-end job_files %d; catalog JobFiles %d",
				A.Vols, j.ID, ls.Files[uint32(j.ID)], ls.JobEnd[uint32(j.ID)], j.Files)
		}
	}
	t.Logf("ls -json %v: %d lines; %d files of job %d, %d of job %d; the jobs alternate %d times in the file records",
		A.Vols, ls.Lines, ls.Files[uint32(A.ID)], A.ID, ls.Files[uint32(B.ID)], B.ID, switches)
	if switches < 3 {
		t.Fatalf("the two sessions are not interleaved in %s (%d alternations of file records): the test would prove nothing", A.Vols[0], switches)
	}

	for _, j := range []job{A, B} {
		t.Run(fmt.Sprintf("job %s", j.Name), func(t *testing.T) {
			r, b := l.outDir(t, "replicad"), l.outDir(t, "bextract")
			s := l.replicadOK(t, r, append([]string{"-job", strconv.Itoa(j.ID)}, vol...)...)
			if s.entries() != j.Files || s.Jobs != 2 {
				t.Errorf("replicad -job %d: %d entries of %d jobs, want %d (JobFiles) of 2", j.ID, s.entries(), s.Jobs, j.Files)
			}
			other := A
			if j.ID == A.ID {
				other = B
			}
			if s.Skipped != other.Files {
				t.Errorf("replicad -job %d: %d skipped, want %d (the other job's files)", j.ID, s.Skipped, other.Files)
			}
			if j.Name == "InterleaveA" && s.DigestsChecked != s.Regular {
				t.Errorf("replicad -job %d: %d digests checked, want %d", j.ID, s.DigestsChecked, s.Regular)
			}
			br := l.bextract(t, j.VolDir, b, j.Vols, j.BSR)
			if len(br.Errors) > 0 || br.Restored != j.Files {
				t.Errorf("bextract with %s: %d restored (want %d), errors:\n%s", j.BSR, br.Restored, j.Files, strings.Join(br.Errors, "\n"))
			}
			rx, bx := sub(t, r, srcDir), sub(t, b, srcDir)
			rs := expectDiffs(t, "replicad -job vs source", rx, src, cmpOpt{}, nil, nil)
			rb := vsBextract(t, "replicad -job vs bextract -b BSR", rx, bx, false, start)
			t.Logf("INTERLEAVED job %d (%s) in %s: replicad -job vs bextract with the job's bsr: %s; vs source: %s", j.ID, j.Name, j.Vols[0], rb, rs)
		})
	}

	t.Run("whole volume", func(t *testing.T) {
		r, b := l.outDir(t, "replicad"), l.outDir(t, "bextract")
		s := l.replicadOK(t, r, vol...)
		if s.Jobs != 2 || s.JobsOK != 2 || s.entries() != A.Files+B.Files {
			t.Errorf("replicad: %d jobs (%d OK), %d entries; want 2, 2, %d", s.Jobs, s.JobsOK, s.entries(), A.Files+B.Files)
		}
		br := l.bextract(t, A.VolDir, b, A.Vols, "")
		rx, bx := sub(t, r, srcDir), sub(t, b, srcDir)
		expectDiffs(t, "replicad (whole volume) vs source", rx, src, cmpOpt{}, nil, nil)

		// bextract without a bsr: data of one session is written into the
		// other's current file.
		n, diffs := compareTrees(bx, src, cmpOpt{})
		bad := map[string]bool{}
		for _, d := range diffs {
			if d.Field == "content" || d.Field == "size" {
				bad[d.Path] = true
			}
		}
		sizeErrs := 0
		for _, e := range br.Errors {
			if strings.Contains(e, "File size of restored file") {
				sizeErrs++
			}
		}
		t.Logf("INTERLEAVED whole volume %s: replicad == source (%d paths); bextract without bsr: %d of %d paths differ from the source (%d with wrong content/size), %d 'File size ... not correct' errors",
			A.Vols[0], len(rx.Entries), len(diffs), n, len(bad), sizeErrs)
		if len(bad) == 0 || sizeErrs == 0 {
			t.Errorf("bextract without bsr restored the interleaved volume correctly (%d bad files, %d size errors): expected it to mix the sessions", len(bad), sizeErrs)
		}
	})
}

// TestSpanningJob runs TreeSpan (pool Span, Maximum Volume Bytes = 5M) on
// the make-tree.sh tree, so that the job spans volumes. Checks: the job
// is in >= 2 volumes; ls -json over them (in order) counts JobFiles;
// replicad over all volumes in order == source == bextract over the same
// volumes; replicad given only the first volume reports the job unfinished
// and fails (exit 1).
func TestSpanningJob(t *testing.T) {
	l := needLab(t)
	srcDir := l.ensureTree(t, "tree")
	src := sourceSnapshot(t, srcDir)
	start := time.Now().Unix()
	j := l.backup(t, "TreeSpan", "Full")
	if len(j.Vols) < 2 {
		t.Fatalf("%s: does not span volumes", j)
	}
	l.checkLs(t, j)
	// Each volume alone: valid JSON lines; a volume that starts inside the
	// job has no start label (JobId unknown: 0) and begins with the tail
	// of a file (notices); the file records add up to JobFiles.
	sum := 0
	for i, v := range j.volPaths() {
		r := l.lsJSONNotices(t, i > 0, v)
		n := 0
		for _, c := range r.Files {
			n += c
		}
		sum += n
		t.Logf("ls -json %s alone: %d lines, %d file records (by JobId %v), %d notices", j.Vols[i], r.Lines, n, r.Files, len(r.Notices))
	}
	if sum != j.Files {
		t.Errorf("ls -json of each volume alone: %d file records in all, catalog JobFiles=%d", sum, j.Files)
	}

	r, b := l.outDir(t, "replicad"), l.outDir(t, "bextract")
	s := l.replicadOK(t, r, j.volPaths()...)
	if s.entries() != j.Files || s.DigestsChecked != s.Regular {
		t.Errorf("replicad: %d entries (JobFiles %d), %d digests for %d regular files", s.entries(), j.Files, s.DigestsChecked, s.Regular)
	}
	br := l.bextract(t, j.VolDir, b, j.Vols, "")
	if len(br.Errors) > 0 || br.Restored != j.Files {
		t.Errorf("bextract: %d restored (want %d), errors:\n%s", br.Restored, j.Files, strings.Join(br.Errors, "\n"))
	}
	rx, bx := sub(t, r, srcDir), sub(t, b, srcDir)
	rs := expectDiffs(t, "replicad (all volumes) vs source", rx, src, cmpOpt{Atime: true}, nil, nil)
	rb := vsBextract(t, "replicad vs bextract (all volumes)", rx, bx, false, start)
	t.Logf("SPAN job %d over %d volumes %v: replicad vs bextract: %s; vs source: %s", j.ID, len(j.Vols), j.Vols, rb, rs)

	part := l.outDir(t, "replicad-first-volume")
	pr := l.replicadRun(t, part, j.volPaths()[0])
	if pr.Exit != 1 || pr.Sum.JobsUnfinished != 1 {
		t.Errorf("replicad on the first volume only: exit %d, %d unfinished jobs; want exit 1 and 1 unfinished\n%s", pr.Exit, pr.Sum.JobsUnfinished, pr.Stdout)
	}
	t.Logf("replicad on %s alone: exit %d, %d jobs unfinished, %d incomplete files, %d entries", j.Vols[0], pr.Exit, pr.Sum.JobsUnfinished, pr.Sum.Incomplete, pr.Sum.entries())
}
