package report

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustCompute(t *testing.T, src Source, p Params) *Report {
	t.Helper()
	r, err := Compute(src, fixedNow, p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// agesTarget is one ok target whose files have the given ages in seconds.
func agesTarget(name string, ages ...int64) MemTarget {
	mt := MemTarget{Info: TargetInfo{Name: name, State: StateOK, Bandwidth: 1}}
	for i, a := range ages {
		mt.Files = append(mt.Files, FileRecord{
			Path: fmt.Sprintf("/f%04d", i), Size: 1, Replicated: ago(time.Duration(a) * time.Second), JobID: uint32(i),
		})
	}
	return mt
}

func TestQuantiles(t *testing.T) {
	seq := func(lo, hi int64) []int64 {
		var s []int64
		for v := hi; v >= lo; v-- { // descending: Compute must sort
			s = append(s, v)
		}
		return s
	}
	for _, c := range []struct {
		name             string
		ages             []int64
		max, p95, median int64
	}{
		{"one", []int64{7}, 7, 7, 7},
		{"two, even: lower middle", []int64{20, 10}, 20, 20, 10},
		{"three, odd", []int64{3, 1, 2}, 3, 3, 2},
		{"four, even", []int64{40, 10, 30, 20}, 40, 40, 20},
		{"duplicates", []int64{5, 5, 5, 1}, 5, 5, 5},
		{"1..20: p95 is the 19th", seq(1, 20), 20, 19, 10},
		{"1..21: p95 is the 20th (ceil 19.95)", seq(1, 21), 21, 20, 11},
		{"1..100", seq(1, 100), 100, 95, 50},
		{"1..101", seq(1, 101), 101, 96, 51},
		{"0..999", seq(0, 999), 999, 949, 499},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := mustCompute(t, MemSource{agesTarget("t", c.ages...)}, DefaultParams())
			s := r.Targets[0].RPO
			if s == nil {
				t.Fatal("no RPO stats")
			}
			want := RPOStats{Samples: int64(len(c.ages)), MaxSecs: c.max, P95Secs: c.p95, MedianSecs: c.median}
			if *s != want {
				t.Errorf("got %+v, want %+v", *s, want)
			}
		})
	}
}

// Against the definition, for random sizes: at least q·n of the ages are
// at most the quantile, and fewer than q·n are under it.
func TestQuantilesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		n := 1 + rng.IntN(300)
		ages := make([]int64, n)
		for i := range ages {
			ages[i] = rng.Int64N(50)
		}
		s := mustCompute(t, MemSource{agesTarget("t", ages...)}, DefaultParams()).Targets[0].RPO
		for _, q := range []struct {
			num, den int64
			got      int64
		}{{95, 100, s.P95Secs}, {1, 2, s.MedianSecs}, {1, 1, s.MaxSecs}} {
			var le, lt int64
			for _, a := range ages {
				if a <= q.got {
					le++
				}
				if a < q.got {
					lt++
				}
			}
			if le*q.den < q.num*int64(n) || lt*q.den >= q.num*int64(n) {
				t.Fatalf("n=%d q=%d/%d: %d is not the nearest-rank quantile of %v", n, q.num, q.den, q.got, ages)
			}
		}
	}
}

func TestEmptyTarget(t *testing.T) {
	r := mustCompute(t, MemSource{{Info: TargetInfo{Name: "e", State: StateOK, Bandwidth: 100}}}, DefaultParams())
	tg := r.Targets[0]
	if tg.RPO != nil || tg.Files != 0 || tg.RPOVerdict != Pass || tg.LastJob != nil {
		t.Errorf("empty target: %+v", tg)
	}
	if tg.RTOEstimateSecs == nil || *tg.RTOEstimateSecs != 300 || tg.RTOVerdict != Pass {
		t.Errorf("empty target RTO %v %v, want the overhead alone", tg.RTOEstimateSecs, tg.RTOVerdict)
	}
	if r.Totals.RPOMaxSecs != nil {
		t.Errorf("totals max %v, want nil", *r.Totals.RPOMaxSecs)
	}
}

func TestRTO(t *testing.T) {
	p := DefaultParams()
	p.SLARTO = 100 * time.Second
	p.RTOOverhead = 10 * time.Second
	for _, c := range []struct {
		name      string
		bytes, bw int64
		est       int64 // -1: unknown
		v         Verdict
	}{
		{"unknown bandwidth", 1000, 0, -1, Unknown},
		{"unknown bandwidth, empty", 0, 0, -1, Unknown},
		{"exact", 900, 10, 100, Pass},
		{"rounded up", 901, 10, 101, Fail},
		{"partial second rounds up", 1, 1000, 11, Pass},
		{"empty", 0, 10, 10, Pass},
		{"huge", 1 << 62, 1, 1<<62 + 10, Fail},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := MemSource{{
				Info:  TargetInfo{Name: "t", Bandwidth: c.bw, State: StateOK},
				Files: []FileRecord{{Path: "/a", Size: c.bytes, Replicated: fixedNow}},
			}}
			tg := mustCompute(t, src, p).Targets[0]
			switch {
			case c.est < 0 && tg.RTOEstimateSecs != nil:
				t.Errorf("estimate %d, want unknown", *tg.RTOEstimateSecs)
			case c.est >= 0 && (tg.RTOEstimateSecs == nil || *tg.RTOEstimateSecs != c.est):
				t.Errorf("estimate %v, want %d", tg.RTOEstimateSecs, c.est)
			}
			if tg.RTOVerdict != c.v || tg.Verdict != c.v {
				t.Errorf("verdicts %s %s, want %s", tg.RTOVerdict, tg.Verdict, c.v)
			}
		})
	}
	// The overhead alone can break the RTO.
	p.RTOOverhead = 101 * time.Second
	src := MemSource{{Info: TargetInfo{Name: "t", Bandwidth: 1, State: StateOK}}}
	if v := mustCompute(t, src, p).Targets[0].RTOVerdict; v != Fail {
		t.Errorf("overhead over the RTO: %s", v)
	}
}

// A file meets the RPO when its whole-second age equals it; a fraction of
// a second more is truncated away, a second more breaches.
func TestRPOBoundary(t *testing.T) {
	rpo := DefaultParams().SLARPO
	src := MemSource{{
		Info: TargetInfo{Name: "t", State: StateOK, Bandwidth: 1},
		Files: []FileRecord{
			{Path: "/exact", Replicated: fixedNow.Add(-rpo)},
			{Path: "/fraction", Replicated: fixedNow.Add(-rpo - 999*time.Millisecond)},
			{Path: "/over", Replicated: fixedNow.Add(-rpo - time.Second)},
		},
	}}
	r := mustCompute(t, src, DefaultParams())
	if r.RPOBreaches.Files != 1 || len(r.RPOBreaches.Worst) != 1 || r.RPOBreaches.Worst[0].Path != "/over" {
		t.Fatalf("breaches %+v", r.RPOBreaches)
	}
	if a := r.RPOBreaches.Worst[0].AgeSecs; a == nil || *a != 14401 {
		t.Errorf("age %v", a)
	}
}

// The bounded heap must list exactly what a full sort would.
func TestBreachesCapAndOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	src := MemSource{}
	type ref struct {
		never        bool
		age          int64
		path, target string
	}
	var all []ref
	for _, name := range []string{"b", "a", "c"} {
		mt := MemTarget{Info: TargetInfo{Name: name, State: StateOK}}
		for i := range 700 {
			// Few distinct ages and paths shared between targets, so that
			// ties on age and on path both happen.
			age := 14400 + rng.Int64N(6)*3600 - 7200
			f := FileRecord{Path: fmt.Sprintf("/p%03d", rng.IntN(300)), Size: int64(i), JobID: uint32(i)}
			if rng.IntN(50) == 0 {
				all = append(all, ref{never: true, path: f.Path, target: name})
			} else {
				f.Replicated = ago(time.Duration(age) * time.Second)
				if age > 14400 {
					all = append(all, ref{age: age, path: f.Path, target: name})
				}
			}
			mt.Files = append(mt.Files, f)
		}
		src = append(src, mt)
	}
	slices.SortFunc(all, func(a, b ref) int {
		switch {
		case a.never != b.never:
			if a.never {
				return -1
			}
			return 1
		case a.age != b.age:
			return int(b.age - a.age)
		case a.path != b.path:
			return strings.Compare(a.path, b.path)
		}
		return strings.Compare(a.target, b.target)
	})
	for _, limit := range []int{0, 1, 17, 100, len(all), len(all) + 5} {
		p := DefaultParams()
		p.MaxListed = limit
		// The order the catalog streams in must not matter.
		for _, s := range []MemSource{src, reversed(src)} {
			r := mustCompute(t, s, p)
			if r.RPOBreaches.Files != int64(len(all)) || r.Totals.RPOBreaches != int64(len(all)) {
				t.Fatalf("limit %d: counted %d, want %d", limit, r.RPOBreaches.Files, len(all))
			}
			want := all[:min(limit, len(all))]
			got := r.RPOBreaches.Worst
			if len(got) != len(want) {
				t.Fatalf("limit %d: listed %d, want %d", limit, len(got), len(want))
			}
			for i := range want {
				g := got[i]
				if g.Path != want[i].path || g.Target != want[i].target || (g.AgeSecs == nil) != want[i].never ||
					(g.AgeSecs != nil && *g.AgeSecs != want[i].age) {
					t.Fatalf("limit %d: entry %d is %+v, want %+v", limit, i, g, want[i])
				}
			}
		}
	}
}

func reversed(src MemSource) MemSource {
	out := slices.Clone(src)
	slices.Reverse(out)
	for i := range out {
		out[i].Files = slices.Clone(out[i].Files)
		slices.Reverse(out[i].Files)
	}
	return out
}

func TestNeverReplicated(t *testing.T) {
	src := MemSource{{
		Info: TargetInfo{Name: "t", State: StateOK, Bandwidth: 1 << 30},
		Files: []FileRecord{
			{Path: "/fresh", Size: 10, Replicated: ago(time.Minute)},
			{Path: "/never", Size: 5, JobID: 7},
			{Path: "/old", Size: 1, Replicated: ago(1000 * time.Hour)},
		},
	}}
	r := mustCompute(t, src, DefaultParams())
	tg := r.Targets[0]
	if tg.Files != 3 || tg.Bytes != 16 || tg.NeverReplicated != 1 || tg.RPOBreaches != 2 || tg.RPOVerdict != Fail {
		t.Errorf("target %+v", tg)
	}
	if tg.RPO.Samples != 2 || tg.RPO.MaxSecs != 3600000 {
		t.Errorf("stats %+v: the never replicated file must not be a sample", *tg.RPO)
	}
	w := r.RPOBreaches.Worst
	if len(w) != 2 || w[0].Path != "/never" || w[0].AgeSecs != nil || w[0].Replicated != nil || w[0].JobID != 7 || w[1].Path != "/old" {
		t.Errorf("worst %+v", w)
	}
}

// Clock skew: copies "from the future" have age 0 and are counted.
func TestFutureTimes(t *testing.T) {
	src := MemSource{{
		Info: TargetInfo{Name: "t", State: StateOK, Bandwidth: 1},
		Files: []FileRecord{
			{Path: "/a", Replicated: fixedNow.Add(time.Hour)},
			{Path: "/b", Replicated: fixedNow.Add(time.Nanosecond)},
			{Path: "/c", Replicated: fixedNow},
			{Path: "/d", Replicated: ago(10 * time.Second)},
		},
	}}
	r := mustCompute(t, src, DefaultParams())
	tg := r.Targets[0]
	if tg.FutureFiles != 2 || r.Totals.FutureFiles != 2 {
		t.Errorf("future files %d, totals %d, want 2", tg.FutureFiles, r.Totals.FutureFiles)
	}
	if want := (RPOStats{Samples: 4, MaxSecs: 10, P95Secs: 10, MedianSecs: 0}); *tg.RPO != want {
		t.Errorf("stats %+v, want %+v", *tg.RPO, want)
	}
	if tg.RPOVerdict != Pass {
		t.Errorf("verdict %s", tg.RPOVerdict)
	}
}

func TestCombine(t *testing.T) {
	for _, c := range []struct {
		in   []Verdict
		want Verdict
	}{
		{nil, Unknown},
		{[]Verdict{Pass}, Pass},
		{[]Verdict{Pass, Pass}, Pass},
		{[]Verdict{Pass, Unknown}, Unknown},
		{[]Verdict{Unknown, Fail}, Fail},
		{[]Verdict{Fail, Pass}, Fail},
		{[]Verdict{Pass, "odd"}, Unknown},
	} {
		if got := combine(c.in...); got != c.want {
			t.Errorf("combine(%v) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestVerdicts(t *testing.T) {
	r := fixtureReport(t)
	got := map[string][3]Verdict{}
	for _, tg := range r.Targets {
		got[tg.Name] = [3]Verdict{tg.RPOVerdict, tg.RTOVerdict, tg.Verdict}
	}
	want := map[string][3]Verdict{
		"alpha": {Fail, Pass, Fail},
		"beta":  {Fail, Fail, Fail},
		"delta": {Pass, Pass, Pass},
		"gamma": {Pass, Unknown, Unknown},
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %v, want %v", name, got[name], w)
		}
	}
	if r.Verdict != Fail || r.RPOVerdict != Fail || r.RTOVerdict != Fail {
		t.Errorf("overall %s %s %s", r.Verdict, r.RPOVerdict, r.RTOVerdict)
	}
	if r.Totals.TargetsPass != 1 || r.Totals.TargetsFail != 2 || r.Totals.TargetsUnknown != 1 {
		t.Errorf("totals %+v", r.Totals)
	}
	if !slices.Equal(r.RTOBreaches, []string{"beta"}) {
		t.Errorf("RTO breaches %v", r.RTOBreaches)
	}
	var att []string
	for _, a := range r.Attention {
		att = append(att, a.Name+":"+string(a.State))
	}
	if !slices.Equal(att, []string{"beta:failed", "gamma:lagging"}) {
		t.Errorf("attention %v", att)
	}
	// Unknown alone is not a pass, overall either.
	r = mustCompute(t, MemSource{{Info: TargetInfo{Name: "u", State: StateOK}}, agesTarget("p", 1)}, DefaultParams())
	if r.Verdict != Unknown || r.RTOVerdict != Unknown || r.RPOVerdict != Pass {
		t.Errorf("overall %s, RPO %s, RTO %s", r.Verdict, r.RPOVerdict, r.RTOVerdict)
	}
	r = mustCompute(t, MemSource{}, DefaultParams())
	if r.Verdict != Unknown || r.RPOVerdict != Unknown || r.RTOVerdict != Unknown {
		t.Errorf("no targets: %s %s %s", r.Verdict, r.RPOVerdict, r.RTOVerdict)
	}
	// A state the report does not know needs attention.
	r = mustCompute(t, MemSource{{Info: TargetInfo{Name: "x", State: "paused"}}, {Info: TargetInfo{Name: "y"}}}, DefaultParams())
	if len(r.Attention) != 2 {
		t.Errorf("attention %+v", r.Attention)
	}
}

func TestJobs(t *testing.T) {
	start := ago(time.Hour)
	src := MemSource{{
		Info: TargetInfo{Name: "t", State: StateOK},
		Jobs: []JobRecord{
			{JobID: 5, Status: "T", Start: start, End: ago(time.Minute), Bytes: 10, Files: 1},
			{JobID: 9, Status: "E", Start: start, Bytes: 1, Errors: 2},
			{JobID: 7, Status: "T", Start: start, Files: 3, Skipped: 4},
			{JobID: 12, Status: "T", Start: ago(2 * time.Hour), Bytes: 100},
		},
	}}
	tg := mustCompute(t, src, DefaultParams()).Targets[0]
	if tg.LastJob == nil || tg.LastJob.JobID != 9 || tg.LastJob.End != nil {
		t.Errorf("last job %+v: want JobId 9 (latest start, higher id), running", tg.LastJob)
	}
	want := JobTotals{Jobs: 4, Bytes: 111, Files: 4, Skipped: 4, Errors: 2, ByStatus: map[string]int64{"T": 3, "E": 1}}
	if fmt.Sprint(tg.Jobs) != fmt.Sprint(want) {
		t.Errorf("totals %+v, want %+v", tg.Jobs, want)
	}
	r := fixtureReport(t)
	if r.Totals.Jobs.Jobs != 6 || r.Totals.Jobs.ByStatus["T"] != 4 {
		t.Errorf("all jobs %+v", r.Totals.Jobs)
	}
	for _, tg := range r.Targets {
		if tg.Name == "alpha" && (tg.LastJob == nil || tg.LastJob.JobID != 102) {
			t.Errorf("alpha's last job %+v", tg.LastJob)
		}
	}
}

func TestTotals(t *testing.T) {
	r := fixtureReport(t)
	tt := r.Totals
	if tt.Targets != 4 || tt.Files != 12 || tt.NeverReplicated != 1 || tt.FutureFiles != 1 || tt.RPOBreaches != 5 {
		t.Errorf("totals %+v", tt)
	}
	if tt.RPOMaxSecs == nil || *tt.RPOMaxSecs != 30*3600 {
		t.Errorf("max %v", tt.RPOMaxSecs)
	}
	var names []string
	for _, tg := range r.Targets {
		names = append(names, tg.Name)
	}
	if !slices.Equal(names, []string{"alpha", "beta", "delta", "gamma"}) {
		t.Errorf("order %v", names)
	}
}

// errSource fails where asked, and may swallow the callback's error as a
// careless catalog would.
type errSource struct {
	MemSource
	filesErr, jobsErr error
	swallow           bool
}

func (e errSource) Files(target string, fn func(FileRecord) error) error {
	if e.filesErr != nil {
		return e.filesErr
	}
	if e.swallow {
		_ = e.MemSource.Files(target, func(f FileRecord) error { fn(f); return nil })
		return nil
	}
	return e.MemSource.Files(target, fn)
}

func (e errSource) Jobs(target string, fn func(JobRecord) error) error {
	if e.jobsErr != nil {
		return e.jobsErr
	}
	return e.MemSource.Jobs(target, fn)
}

func TestErrors(t *testing.T) {
	ok := MemSource{agesTarget("t", 1)}
	bad := func(f FileRecord) MemSource {
		return MemSource{{Info: TargetInfo{Name: "t"}, Files: []FileRecord{{Path: "/x", Replicated: fixedNow}, f}}}
	}
	io := errors.New("bbolt: tx closed")
	for _, c := range []struct {
		name string
		src  Source
		now  time.Time
		p    func(*Params)
		want error
	}{
		{"nil source", nil, fixedNow, nil, ErrNilSource},
		{"zero params", ok, fixedNow, func(p *Params) { *p = Params{} }, ErrParams},
		{"zero now", ok, time.Time{}, nil, ErrParams},
		{"sub-second RPO", ok, fixedNow, func(p *Params) { p.SLARPO = time.Millisecond }, ErrParams},
		{"zero RTO", ok, fixedNow, func(p *Params) { p.SLARTO = 0 }, ErrParams},
		{"negative overhead", ok, fixedNow, func(p *Params) { p.RTOOverhead = -1 }, ErrParams},
		{"negative max", ok, fixedNow, func(p *Params) { p.MaxListed = -1 }, ErrParams},
		{"empty name", MemSource{{}}, fixedNow, nil, ErrTarget},
		{"duplicate", MemSource{agesTarget("t"), agesTarget("u"), agesTarget("t")}, fixedNow, nil, ErrTarget},
		{"negative bandwidth", MemSource{{Info: TargetInfo{Name: "t", Bandwidth: -1}}}, fixedNow, nil, ErrTarget},
		{"negative pending", MemSource{{Info: TargetInfo{Name: "t", PendingJobs: -1}}}, fixedNow, nil, ErrTarget},
		{"empty path", bad(FileRecord{Replicated: fixedNow}), fixedNow, nil, ErrRecord},
		{"negative size", bad(FileRecord{Path: "/n", Size: -1}), fixedNow, nil, ErrRecord},
		{"overflow", MemSource{{Info: TargetInfo{Name: "t"}, Files: []FileRecord{{Path: "/a", Size: 1 << 62}, {Path: "/b", Size: 1 << 62}}}}, fixedNow, nil, ErrRecord},
		{"negative job", MemSource{{Info: TargetInfo{Name: "t"}, Jobs: []JobRecord{{Errors: -1}}}}, fixedNow, nil, ErrRecord},
		{"files error", errSource{MemSource: ok, filesErr: io}, fixedNow, nil, io},
		{"jobs error", errSource{MemSource: ok, jobsErr: io}, fixedNow, nil, io},
		{"swallowed", errSource{MemSource: bad(FileRecord{Path: "/n", Size: -1}), swallow: true}, fixedNow, nil, ErrRecord},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := DefaultParams()
			if c.p != nil {
				c.p(&p)
			}
			r, err := Compute(c.src, c.now, p)
			if !errors.Is(err, c.want) || r != nil {
				t.Fatalf("got %v, %v; want %v", r, err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "report: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestMemSource(t *testing.T) {
	m := fixture()
	if err := m.Files("nope", func(FileRecord) error { return nil }); !errors.Is(err, ErrUnknownTarget) {
		t.Errorf("Files: %v", err)
	}
	if err := m.Jobs("nope", func(JobRecord) error { return nil }); !errors.Is(err, ErrUnknownTarget) {
		t.Errorf("Jobs: %v", err)
	}
	stop := errors.New("stop")
	n := 0
	if err := m.Files("alpha", func(FileRecord) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("Files did not stop: %v after %d", err, n)
	}
	n = 0
	if err := m.Jobs("alpha", func(JobRecord) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("Jobs did not stop: %v after %d", err, n)
	}
	if len(m.Targets()) != 4 || m.Targets()[0].Name != "gamma" {
		t.Errorf("Targets %v", m.Targets())
	}
}

// Compute copies what it keeps, so a Source may reuse the bytes behind its
// strings once the callback returns (as a bbolt-backed one does).
type reusingSource struct{ n int }

func (reusingSource) Targets() []TargetInfo {
	return []TargetInfo{{Name: "t", State: StateOK}}
}

func (s reusingSource) Files(_ string, fn func(FileRecord) error) error {
	buf := make([]byte, 8)
	for i := range s.n {
		copy(buf, fmt.Sprintf("/f%06d", i))
		p := unsafeString(buf)
		if err := fn(FileRecord{Path: p, Replicated: ago(time.Duration(100000+i) * time.Second)}); err != nil {
			return err
		}
		copy(buf, "XXXXXXXX")
	}
	return nil
}

func (reusingSource) Jobs(string, func(JobRecord) error) error { return nil }

func TestReusedStrings(t *testing.T) {
	p := DefaultParams()
	p.MaxListed = 3
	r := mustCompute(t, reusingSource{n: 50}, p)
	var got []string
	for _, w := range r.RPOBreaches.Worst {
		got = append(got, w.Path)
	}
	if !slices.Equal(got, []string{"/f000049", "/f000048", "/f000047"}) {
		t.Errorf("worst %v", got)
	}
}

// Equal inputs give equal reports: Compute is pure.
func TestDeterministic(t *testing.T) {
	a, b := fixtureReport(t), mustCompute(t, reversed(fixture()), DefaultParams())
	if !reflect.DeepEqual(a, b) {
		t.Error("reports differ with the catalog order")
	}
}
