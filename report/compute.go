package report

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Compute builds the report of src as of now, a pure function of the two
// and p: the same catalog, now and params give the same Report, which is
// what makes a report reproducible for an audit.
//
// It reads each target's files and jobs once, in target name order. Memory
// is one int64 per file of the largest target (exact quantiles need every
// age: 8 MB per million files) plus p.MaxListed listed breaches; records
// themselves are not kept.
//
// Errors: ErrNilSource, ErrParams (bad p, or a zero now), ErrTarget,
// ErrRecord, or a Source error wrapped with the target it came from. No
// partial report is returned with an error: a compliance report that left
// out what it could not read would overstate compliance.
func Compute(src Source, now time.Time, p Params) (*Report, error) {
	if src == nil {
		return nil, ErrNilSource
	}
	if err := p.check(now); err != nil {
		return nil, err
	}
	sla := SLA{
		RPOSecs:         int64(p.SLARPO / time.Second),
		RTOSecs:         int64(p.SLARTO / time.Second),
		RTOOverheadSecs: int64(p.RTOOverhead / time.Second),
		MaxListed:       p.MaxListed,
	}
	infos := slices.Clone(src.Targets())
	slices.SortStableFunc(infos, func(a, b TargetInfo) int { return strings.Compare(a.Name, b.Name) })
	for i, t := range infos {
		if err := checkTarget(t); err != nil {
			return nil, err
		}
		if i > 0 && infos[i-1].Name == t.Name {
			return nil, fmt.Errorf("%w: name %q given twice", ErrTarget, t.Name)
		}
	}

	r := &Report{
		Schema:      SchemaVersion,
		GeneratedAt: now.UTC(),
		SLA:         sla,
		Targets:     make([]Target, 0, len(infos)),
		RTOBreaches: []string{},
		Attention:   []Attention{},
		Totals:      Totals{Targets: len(infos), Jobs: JobTotals{ByStatus: map[string]int64{}}},
	}
	c := &computer{now: now, sla: sla, worst: worstHeap{max: p.MaxListed}}
	var rpos, rtos, all []Verdict
	for _, info := range infos {
		t, err := c.target(src, info)
		if err != nil {
			return nil, err
		}
		r.Targets = append(r.Targets, t)
		rpos = append(rpos, t.RPOVerdict)
		rtos = append(rtos, t.RTOVerdict)
		all = append(all, t.Verdict)
		r.Totals.add(&t)
		if t.RTOVerdict == Fail {
			r.RTOBreaches = append(r.RTOBreaches, t.Name)
		}
		if t.State != StateOK {
			r.Attention = append(r.Attention, Attention{
				Name: t.Name, State: t.State, LastError: t.LastError,
				LastSuccess: t.LastSuccess, PendingJobs: t.PendingJobs,
			})
		}
	}
	r.RPOVerdict = combine(rpos...)
	r.RTOVerdict = combine(rtos...)
	r.Verdict = combine(all...)
	r.RPOBreaches = RPOBreaches{Files: r.Totals.RPOBreaches, Worst: c.worst.list()}
	return r, nil
}

func (p Params) check(now time.Time) error {
	switch {
	case now.IsZero():
		return fmt.Errorf("%w: now is the zero time", ErrParams)
	case p.SLARPO < time.Second:
		return fmt.Errorf("%w: SLARPO %v is under 1s (start from DefaultParams)", ErrParams, p.SLARPO)
	case p.SLARTO < time.Second:
		return fmt.Errorf("%w: SLARTO %v is under 1s (start from DefaultParams)", ErrParams, p.SLARTO)
	case p.RTOOverhead < 0:
		return fmt.Errorf("%w: RTOOverhead %v is negative", ErrParams, p.RTOOverhead)
	case p.MaxListed < 0:
		return fmt.Errorf("%w: MaxListed %d is negative", ErrParams, p.MaxListed)
	}
	return nil
}

func checkTarget(t TargetInfo) error {
	switch {
	case t.Name == "":
		return fmt.Errorf("%w: empty name", ErrTarget)
	case t.Bandwidth < 0:
		return fmt.Errorf("%w: %q: negative bandwidth %d", ErrTarget, t.Name, t.Bandwidth)
	case t.PendingJobs < 0:
		return fmt.Errorf("%w: %q: negative pending jobs %d", ErrTarget, t.Name, t.PendingJobs)
	}
	return nil
}

func (tt *Totals) add(t *Target) {
	tt.Files += t.Files
	tt.Bytes += t.Bytes
	tt.RPOBreaches += t.RPOBreaches
	tt.NeverReplicated += t.NeverReplicated
	tt.FutureFiles += t.FutureFiles
	if t.RPO != nil && (tt.RPOMaxSecs == nil || t.RPO.MaxSecs > *tt.RPOMaxSecs) {
		tt.RPOMaxSecs = ptr(t.RPO.MaxSecs)
	}
	switch t.Verdict {
	case Pass:
		tt.TargetsPass++
	case Fail:
		tt.TargetsFail++
	default:
		tt.TargetsUnknown++
	}
	tt.Jobs.Jobs += t.Jobs.Jobs
	tt.Jobs.Bytes += t.Jobs.Bytes
	tt.Jobs.Files += t.Jobs.Files
	tt.Jobs.Skipped += t.Jobs.Skipped
	tt.Jobs.Errors += t.Jobs.Errors
	for s, n := range t.Jobs.ByStatus {
		tt.Jobs.ByStatus[s] += n
	}
}

// computer carries what outlives one target: the ages buffer, reused so
// that memory is that of the largest target, not of their sum, and the
// breaches heap, which ranks files across targets.
type computer struct {
	now   time.Time
	sla   SLA
	ages  []int64
	worst worstHeap
}

func (c *computer) target(src Source, info TargetInfo) (Target, error) {
	t := Target{
		Name:         info.Name,
		Root:         info.Root,
		State:        info.State,
		LastError:    info.LastError,
		LastSuccess:  utcPtr(info.LastSuccess),
		PendingJobs:  info.PendingJobs,
		BandwidthBps: info.Bandwidth,
		Jobs:         JobTotals{ByStatus: map[string]int64{}},
	}
	c.ages = c.ages[:0]
	// bad keeps our own error: the Source returns it, but may wrap it or,
	// if it ignores the contract, not return it at all.
	var bad error
	err := src.Files(info.Name, func(f FileRecord) error {
		if bad != nil {
			return bad
		}
		if bad = c.file(&t, f); bad != nil {
			return bad
		}
		return nil
	})
	if bad != nil {
		return t, bad
	}
	if err != nil {
		return t, fmt.Errorf("report: target %q: files: %w", info.Name, err)
	}
	if n := len(c.ages); n > 0 {
		slices.Sort(c.ages)
		t.RPO = &RPOStats{
			Samples:    int64(n),
			MaxSecs:    c.ages[n-1],
			P95Secs:    nearestRank(c.ages, 95, 100),
			MedianSecs: nearestRank(c.ages, 1, 2),
		}
	}

	var last JobRecord
	var haveLast bool
	err = src.Jobs(info.Name, func(j JobRecord) error {
		if bad != nil {
			return bad
		}
		if j.Bytes < 0 || j.Files < 0 || j.Skipped < 0 || j.Errors < 0 {
			bad = fmt.Errorf("%w: target %q: job %d: negative count", ErrRecord, info.Name, j.JobID)
			return bad
		}
		t.Jobs.Jobs++
		t.Jobs.Bytes += j.Bytes
		t.Jobs.Files += j.Files
		t.Jobs.Skipped += j.Skipped
		t.Jobs.Errors += j.Errors
		t.Jobs.ByStatus[strings.Clone(j.Status)]++
		if !haveLast || j.Start.After(last.Start) || (j.Start.Equal(last.Start) && j.JobID > last.JobID) {
			last, haveLast = j, true
			last.Name, last.Level, last.Status = strings.Clone(j.Name), strings.Clone(j.Level), strings.Clone(j.Status)
		}
		return nil
	})
	if bad != nil {
		return t, bad
	}
	if err != nil {
		return t, fmt.Errorf("report: target %q: jobs: %w", info.Name, err)
	}
	if haveLast {
		t.LastJob = &Job{
			JobID: last.JobID, Name: last.Name, Level: last.Level, Status: last.Status,
			Start: utcPtr(last.Start), End: utcPtr(last.End),
			Bytes: last.Bytes, Files: last.Files, Skipped: last.Skipped, Errors: last.Errors,
		}
	}

	t.RPOVerdict = Pass
	if t.RPOBreaches > 0 {
		t.RPOVerdict = Fail
	}
	t.RTOVerdict = Unknown
	if info.Bandwidth > 0 {
		// Rounded up: an estimate that errs must err towards a breach.
		secs := t.Bytes / info.Bandwidth
		if t.Bytes%info.Bandwidth != 0 {
			secs++
		}
		secs = satAdd(secs, c.sla.RTOOverheadSecs)
		t.RTOEstimateSecs = &secs
		t.RTOVerdict = Pass
		if secs > c.sla.RTOSecs {
			t.RTOVerdict = Fail
		}
	}
	t.Verdict = combine(t.RPOVerdict, t.RTOVerdict)
	return t, nil
}

// file accounts for one file: the hot path, run once per file.
func (c *computer) file(t *Target, f FileRecord) error {
	if f.Path == "" {
		return fmt.Errorf("%w: target %q: file with an empty path", ErrRecord, t.Name)
	}
	if f.Size < 0 {
		return fmt.Errorf("%w: target %q: %q: negative size %d", ErrRecord, t.Name, f.Path, f.Size)
	}
	if t.Bytes > math.MaxInt64-f.Size {
		return fmt.Errorf("%w: target %q: byte total overflows", ErrRecord, t.Name)
	}
	t.Files++
	t.Bytes += f.Size
	if f.Replicated.IsZero() {
		t.NeverReplicated++
		t.RPOBreaches++
		c.worst.offer(candidate{never: true, path: f.Path, target: t.Name, size: f.Size, job: f.JobID})
		return nil
	}
	d := c.now.Sub(f.Replicated)
	if d < 0 {
		// A copy cannot be newer than now: the catalog's clock is ahead of
		// ours. Counting it shows the skew; clamping keeps one bad clock
		// from producing negative ages in the quantiles.
		t.FutureFiles++
		d = 0
	}
	age := int64(d / time.Second)
	c.ages = append(c.ages, age)
	if age > c.sla.RPOSecs {
		t.RPOBreaches++
		c.worst.offer(candidate{age: age, path: f.Path, target: t.Name, size: f.Size, rep: f.Replicated, job: f.JobID})
	}
	return nil
}

// nearestRank returns the num/den quantile of sorted (not empty): the
// ceil(num/den·n)-th smallest value, computed in integers so that no
// rounding of 0.95·n can move the rank.
func nearestRank(sorted []int64, num, den int64) int64 {
	n := int64(len(sorted))
	rank := (num*n + den - 1) / den
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func ptr[T any](v T) *T { return &v }

// utcPtr gives nil for the zero time, which the report writes as null: a
// time that never was is not 0001-01-01.
func utcPtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return ptr(t.UTC())
}

// candidate is a breaching file in the worst-files heap.
type candidate struct {
	never        bool
	age          int64
	path, target string
	size         int64
	rep          time.Time
	job          uint32
}

// worse reports whether a is listed before b: never replicated first, then
// the oldest, then by path and target so the order is total and does not
// depend on the order the catalog streams files in.
func worse(a, b *candidate) bool {
	if a.never != b.never {
		return a.never
	}
	if a.age != b.age {
		return a.age > b.age
	}
	if a.path != b.path {
		return a.path < b.path
	}
	return a.target < b.target
}

// worstHeap keeps the max worst candidates offered: a heap whose root is
// the least bad of them, so a new candidate either beats the root and
// replaces it or is dropped. O(log max) per breach and max entries of
// memory, where sorting all breaches would hold every one of them.
type worstHeap struct {
	max int
	h   []candidate
}

func (w *worstHeap) offer(c candidate) {
	if w.max == 0 {
		return
	}
	if len(w.h) == w.max && !worse(&c, &w.h[0]) {
		return
	}
	// Only now copy the strings: the Source may reuse their storage after
	// the callback returns, and most breaches are dropped above.
	c.path, c.target = strings.Clone(c.path), strings.Clone(c.target)
	if len(w.h) < w.max {
		w.h = append(w.h, c)
		w.up(len(w.h) - 1)
		return
	}
	w.h[0] = c
	w.down(0)
}

// less orders the heap: the root is the least bad.
func (w *worstHeap) less(i, j int) bool { return worse(&w.h[j], &w.h[i]) }

func (w *worstHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !w.less(i, p) {
			return
		}
		w.h[i], w.h[p] = w.h[p], w.h[i]
		i = p
	}
}

func (w *worstHeap) down(i int) {
	n := len(w.h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && w.less(r, l) {
			m = r
		}
		if !w.less(m, i) {
			return
		}
		w.h[i], w.h[m] = w.h[m], w.h[i]
		i = m
	}
}

// list returns the kept candidates worst first.
func (w *worstHeap) list() []FileBreach {
	slices.SortFunc(w.h, func(a, b candidate) int {
		switch {
		case worse(&a, &b):
			return -1
		case worse(&b, &a):
			return 1
		}
		return 0
	})
	out := make([]FileBreach, len(w.h))
	for i, c := range w.h {
		out[i] = FileBreach{Target: c.target, Path: c.path, Size: c.size, JobID: c.job}
		if !c.never {
			out[i].AgeSecs = ptr(c.age)
			out[i].Replicated = utcPtr(c.rep)
		}
	}
	return out
}
