package replica

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/extract"
)

// Group is a consistency group: backed-up paths (directories or files)
// whose changes must appear together at the DR site, such as a database's
// data files and logs.
//
// A Mirror with groups stages the regular files of a group that a job
// changes under temporary names beside their final paths, and holds the
// job's deletions in the group. At the end of the job, if it ended OK, it
// flushes the file system, records the list of staged files and deletions
// in its journal, renames the staged files into place one after the
// other, applies the deletions, and clears the journal. What a reader can
// observe:
//
//   - until the switch, the old versions of all the group's files;
//   - during the switch (one rename per file, microseconds each), a mix:
//     files already renamed are new, the others still old;
//   - after it, the new versions of all.
//
// A crash before the journal is written leaves the old versions (the
// staged files are removed at the next start); a crash after it is
// completed at the next start from the journal, before anything else is
// written: all of the job's changes to the group become visible, or none.
// A job that did not end OK switches nothing. Symbolic links, hard links,
// directories and special files in a group are applied as they come.
// Without MirrorOptions.Journal the switch is not crash-safe.
type Group struct {
	Name  string
	Paths []string
}

// groupOf returns the group holding backed-up path p, or "".
func groupOf(groups []Group, p string) string {
	p = strings.TrimSuffix(p, "/")
	for _, g := range groups {
		for _, gp := range g.Paths {
			gp = strings.TrimSuffix(gp, "/")
			if p == gp || strings.HasPrefix(p, gp+"/") {
				return g.Name
			}
		}
	}
	return ""
}

// switchGroups puts the held files and deletions of the groups in place
// (see Group).
func (m *Mirror) switchGroups(job *bacularec.Job) error {
	held := m.w.Held()
	dels := m.heldDels
	m.heldDels = nil
	if len(held) == 0 && len(dels) == 0 {
		return nil
	}
	if !job.OK() {
		m.w.DropHeld()
		if m.opt.Logf != nil {
			m.opt.Logf("replica: %s: job %s did not end OK (status %q): consistency groups not switched (%d files, %d deletions dropped)",
				m.root, jobName(job), job.Status, len(held), len(dels))
		}
		return nil
	}
	if m.opt.Journal != "" {
		if err := m.w.Sync(); err != nil {
			return fmt.Errorf("%w: %w", ErrTargetFailed, err)
		}
		rec := journalRecord{Job: jobName(job), JobID: job.JobID, Started: time.Now().UTC()}
		for _, h := range held {
			rec.Switch = append(rec.Switch, switchEntry{Rel: h.Rel, Tmp: h.Tmp})
		}
		for _, d := range dels {
			rec.Deletes = append(rec.Deletes, d.Path)
		}
		b, _ := json.Marshal(rec)
		if err := writeFileAtomic(m.opt.Journal, b); err != nil {
			return fmt.Errorf("%w: journal: %w", ErrTargetFailed, err)
		}
	}
	err := m.classify(job0(held), m.w.Switch())
	var errs []error
	errs = append(errs, err)
	for _, d := range dels {
		errs = append(errs, m.classify(d, m.w.Apply(&bacularec.Item{Kind: bacularec.KindFileEnd, File: d})))
		m.stats.Deleted++
	}
	return errors.Join(errs...)
}

// job0 gives classify a file to name when the error does not.
func job0(held []extract.Staged) *bacularec.File {
	if len(held) == 0 {
		return &bacularec.File{}
	}
	return &bacularec.File{Path: held[0].Path}
}

// recoverSwitch completes a switch that a crash interrupted.
func (m *Mirror) recoverSwitch(prev *journalRecord) error {
	var errs []error
	for _, s := range prev.Switch {
		if err := m.w.Install(s.Rel, s.Tmp); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range prev.Deletes {
		if err := m.w.Apply(&bacularec.Item{Kind: bacularec.KindFileEnd, File: &bacularec.File{Type: bacularec.TypeDeleted, Path: p}}); err != nil {
			errs = append(errs, err)
		}
	}
	if m.opt.Logf != nil && len(prev.Switch)+len(prev.Deletes) > 0 {
		m.opt.Logf("replica: %s: completed the consistency-group switch of job %s interrupted by a crash (%d files, %d deletions)",
			m.root, prev.Job, len(prev.Switch), len(prev.Deletes))
	}
	return errors.Join(errs...)
}
