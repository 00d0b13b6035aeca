package extract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/openbrc/brc/bacularec"
)

// RunOptions tune Run.
type RunOptions struct {
	// Progress, when set, is called about every ProgressEvery with the
	// summary so far, and once at the end.
	Progress      func(Summary)
	ProgressEvery time.Duration // default 250ms
	// Errorf receives every problem that does not stop the run: a file not
	// extracted, a digest mismatch, skipped damaged data. Nil discards them
	// (they are still counted).
	Errorf func(error)
}

// Summary is what Run did: the reader's view (jobs, digests, streams not
// decoded, notices) and the writer's (Stats).
type Summary struct {
	Jobs             int
	JobsOK           int // ended with status 'T'
	JobsUnfinished   int // the volumes ended before the job's end label
	Files            int64
	Bytes            int64
	DigestsChecked   int64
	DigestMismatches int64
	NotDecoded       map[int]int // stream -> files with records of it
	Notices          int         // non-fatal reader problems (skipped data, orphan records)
	Errors           int64       // files not extracted faithfully
	Writer           Stats
}

// Failed reports whether anything was lost or wrong: a file not extracted,
// a digest mismatch, damaged data skipped.
func (s Summary) Failed() bool {
	return s.Errors > 0 || s.DigestMismatches > 0 || s.Notices > 0 || s.Writer.Incomplete > 0
}

// String renders the summary as the final report of an extraction.
func (s Summary) String() string {
	var b strings.Builder
	w := s.Writer
	fmt.Fprintf(&b, "jobs: %d (%d ended OK, %d unfinished in these volumes)\n", s.Jobs, s.JobsOK, s.JobsUnfinished)
	fmt.Fprintf(&b, "files: %d regular, %d directories, %d symlinks, %d hard links, %d special; %d deleted, %d skipped\n",
		w.Files, w.Dirs, w.Symlinks, w.HardLinks, w.Specials, w.Deleted, w.Skipped)
	fmt.Fprintf(&b, "bytes: %d (%d left as holes)\n", w.Bytes, w.HoleBytes)
	fmt.Fprintf(&b, "digests: %d checked, %d mismatched\n", s.DigestsChecked, s.DigestMismatches)
	if len(s.NotDecoded) == 0 {
		b.WriteString("streams not decoded: none\n")
	} else {
		b.WriteString("streams not decoded:")
		for _, st := range slices.Sorted(maps.Keys(s.NotDecoded)) {
			fmt.Fprintf(&b, " %d (%s) in %d files;", st, bacularec.StreamName(st), s.NotDecoded[st])
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "problems: %d errors, %d reader notices, %d incomplete files, %d warnings\n",
		s.Errors, s.Notices, w.Incomplete, w.Warnings)
	return b.String()
}

// Run extracts everything f yields into w and closes w. It stops at the
// first fatal error (damaged volume, the target unusable, ctx done); other
// problems are counted and passed to opt.Errorf.
func Run(ctx context.Context, f *bacularec.Files, w *Writer, opt RunOptions) (Summary, error) {
	s := Summary{NotDecoded: map[int]int{}}
	report := func(err error) {
		if opt.Errorf != nil {
			opt.Errorf(err)
		}
	}
	every := opt.ProgressEvery
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	next := time.Now().Add(every)
	var err error
	for n := 0; ; n++ {
		var it *bacularec.Item
		it, err = f.Next()
		if err == io.EOF {
			err = nil
			break
		}
		if err != nil {
			break
		}
		switch it.Kind {
		case bacularec.KindJobStart:
			s.Jobs++
		case bacularec.KindJobEnd:
			if it.Job.OK() {
				s.JobsOK++
			} else if !it.Job.Ended {
				s.JobsUnfinished++
			}
		case bacularec.KindFile:
			s.Files++
		case bacularec.KindData:
			s.Bytes += int64(len(it.Data))
		case bacularec.KindFileEnd:
			if it.File.DigestChecked {
				s.DigestsChecked++
			}
			if it.File.DigestErr != nil {
				s.DigestMismatches++
				report(it.File.DigestErr)
			}
			for _, c := range it.File.NotDecoded {
				s.NotDecoded[c.Stream]++
			}
		case bacularec.KindNotice:
			s.Notices++
			report(it.Err)
		}
		if aerr := w.Apply(it); aerr != nil {
			if IsFatal(aerr) {
				err = aerr
				break
			}
			if !errors.Is(aerr, ErrNotDecoded) && !errors.Is(aerr, ErrIncomplete) {
				s.Errors++
			}
			report(aerr)
		}
		if n%256 == 0 {
			if cerr := ctx.Err(); cerr != nil {
				err = cerr
				break
			}
			if opt.Progress != nil && time.Now().After(next) {
				s.Writer = w.Stats()
				opt.Progress(s)
				next = time.Now().Add(every)
			}
		}
	}
	if cerr := w.Close(); cerr != nil {
		report(cerr)
		if err == nil && IsFatal(cerr) {
			err = cerr
		} else {
			s.Errors++
		}
	}
	s.Writer = w.Stats()
	if opt.Progress != nil {
		opt.Progress(s)
	}
	return s, err
}
