package main

import (
	"bufio"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/openbrc/brc/bacularec"
)

const tempPrefix = ".brc-tmp."

// volFileInfo is what the report needs of a file of the volume.
type volFileInfo struct {
	path string
	typ  bacularec.FileType
	size int64
	end  bacularec.RecordEnd
}

// targetEvents is what the events say of one target.
type targetEvents struct {
	visible    map[string]int64 // final name -> first time it appeared
	fromScan   map[string]bool  // ... and it was found by a scan, not an event
	closed     map[string]int64 // temporary name -> last close after writing
	renamedOf  map[string]string
	movedFrom  map[uint32]string // cookie -> temporary name
	last       int64             // last event of any kind
	lastAttrib int64             // last directory metadata event
	renames    []rename          // renames into a final name
}

type rename struct {
	t    int64
	path string
}

func newTargetEvents() *targetEvents {
	return &targetEvents{visible: map[string]int64{}, fromScan: map[string]bool{}, closed: map[string]int64{},
		renamedOf: map[string]string{}, movedFrom: map[uint32]string{}}
}

func isTemp(p string) bool { return strings.HasPrefix(filepath.Base(p), tempPrefix) }

func (te *targetEvents) add(e *event) {
	if e.kind == 'E' {
		te.last = max(te.last, e.t)
	}
	temp := isTemp(e.path)
	seen := func() {
		if !e.dir && !temp {
			if _, ok := te.visible[e.path]; !ok {
				te.visible[e.path] = e.t
				te.fromScan[e.path] = e.kind == 'S'
			}
		}
	}
	if e.kind == 'S' {
		seen()
		return
	}
	switch e.op {
	case "create":
		seen()
	case "close_write":
		if temp {
			te.closed[e.path] = e.t
		}
	case "moved_from":
		if temp {
			te.movedFrom[e.cookie] = e.path
		}
	case "moved_to":
		if from, ok := te.movedFrom[e.cookie]; ok {
			delete(te.movedFrom, e.cookie)
			if !temp {
				te.renamedOf[e.path] = from
			}
		}
		if !temp && !e.dir {
			te.renames = append(te.renames, rename{e.t, e.path})
		}
		seen()
	case "attrib":
		te.lastAttrib = max(te.lastAttrib, e.t)
	}
}

// growth is a volume's recorded sizes, in time order.
type growth []struct{ t, size int64 }

// reached returns the first time the volume was at least size bytes long.
func (g growth) reached(size int64) (int64, bool) {
	i := sort.Search(len(g), func(i int) bool { return g[i].size >= size })
	if i == len(g) {
		return 0, false
	}
	return g[i].t, true
}

type memSample struct{ t, kb int64 }

// memSamples are /proc/meminfo samples in time order.
type memSamples []memSample

// at returns the last sample at or before t (kB).
func (m memSamples) at(t int64) (int64, bool) {
	i := sort.Search(len(m), func(i int) bool { return m[i].t > t })
	if i == 0 {
		return 0, false
	}
	return m[i-1].kb, true
}

// stats are order statistics of durations (ns).
type stats struct {
	n                   int
	p50, p90, p99, maxv int64
}

// nearest-rank percentile of sorted v
func pct(v []int64, p float64) int64 {
	if len(v) == 0 {
		return 0
	}
	k := int(math.Ceil(p/100*float64(len(v)))) - 1
	return v[min(max(k, 0), len(v)-1)]
}

func statsOf(v []int64) stats {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return stats{}
	}
	return stats{n: len(s), p50: pct(s, 50), p90: pct(s, 90), p99: pct(s, 99), maxv: s[len(s)-1]}
}

func sec(ns int64) string { return strconv.FormatFloat(float64(ns)/1e9, 'f', 3, 64) }

func (s stats) String() string {
	return fmt.Sprintf("n=%d p50=%ss p90=%ss p99=%ss max=%ss", s.n, sec(s.p50), sec(s.p90), sec(s.p99), sec(s.maxv))
}

// readVolume lists the files of the volumes (directories and deletion
// records left out) with where each one's last record ends.
func readVolume(paths []string) (files []volFileInfo, dirs int, jobs []*bacularec.Job, err error) {
	f := bacularec.NewFiles(bacularec.NewMultiReader(bacularec.FileVolumes(paths...)))
	f.SetVerify(false)
	defer f.Close()
	for {
		it, err := f.Next()
		if err == io.EOF {
			return files, dirs, jobs, nil
		}
		if err != nil {
			return nil, 0, nil, err
		}
		switch it.Kind {
		case bacularec.KindJobEnd:
			jobs = append(jobs, it.Job)
		case bacularec.KindFileEnd:
			fl := it.File
			if fl.Type.IsDir() {
				dirs++
				continue
			}
			if fl.Type == bacularec.TypeDeleted {
				continue
			}
			files = append(files, volFileInfo{path: fl.Path, typ: fl.Type, size: fl.Stat.Size, end: fl.End})
		}
	}
}

// relOf is where a backed-up path lands under a target root.
func relOf(p, strip string) string {
	if strip != "" && strip != "/" {
		strip = strings.TrimSuffix(strip, "/")
		if p == strip || strings.HasPrefix(p, strip+"/") {
			p = p[len(strip):]
		}
	}
	return strings.Trim(p, "/")
}

// newestCtime is the latest ctime of anything under root.
func newestCtime(root string) int64 {
	var newest int64
	_ = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := de.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				newest = max(newest, st.Ctim.Sec*1e9+st.Ctim.Nsec)
			}
		}
		return nil
	})
	return newest
}

type reportOpts struct {
	events, strip, tsv string
	vols, roots        []string
	done               float64
	big                int64
}

func report(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	var o reportOpts
	var vols, roots string
	fs.StringVar(&o.events, "events", "", "events file written by watch")
	fs.StringVar(&vols, "vol", "", "comma-separated volume files of the job, in order")
	fs.StringVar(&roots, "targets", "", "comma-separated target roots, in the order given to watch")
	fs.StringVar(&o.strip, "strip-prefix", "", "replicad's strip_prefix")
	fs.StringVar(&o.tsv, "tsv", "", "write one line per file here")
	fs.Float64Var(&o.done, "done", 0, "Unix time (s) replicad reported the job done on every target, for the record")
	fs.Int64Var(&o.big, "big", 1<<20, "files of at least this many bytes count as large in the breakdown")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.events == "" || vols == "" || roots == "" || fs.NArg() > 0 {
		return errors.New("report needs -events, -vol and -targets")
	}
	o.vols, o.roots = strings.Split(vols, ","), strings.Split(roots, ",")
	return runReport(o, stdout)
}

func runReport(o reportOpts, stdout io.Writer) error {
	ef, err := os.Open(o.events)
	if err != nil {
		return err
	}
	evs, err := readEvents(ef)
	ef.Close()
	if err != nil {
		return err
	}
	files, ndirs, jobs, err := readVolume(o.vols)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return errors.New("no file in the volumes")
	}
	grow := map[string]growth{}
	tes := make([]*targetEvents, len(o.roots))
	for i := range tes {
		tes[i] = newTargetEvents()
	}
	overflows := 0
	var mem memSamples
	for i := range evs {
		e := &evs[i]
		switch e.kind {
		case 'V':
			grow[e.volume] = append(grow[e.volume], struct{ t, size int64 }{e.t, e.size})
		case 'E', 'S':
			if e.target < 0 || e.target >= len(tes) {
				return fmt.Errorf("event of target %d, %d targets given", e.target, len(tes))
			}
			tes[e.target].add(e)
		case 'O':
			overflows++
		case 'M':
			mem = append(mem, memSample{e.t, e.dirty + e.wback})
		}
	}
	if overflows > 0 {
		return fmt.Errorf("%s: the inotify queue overflowed %d times, events are missing", o.events, overflows)
	}
	// The job's end: the last growth of the last volume (the block holding
	// the EOS label); its start: the first growth recorded.
	last := filepath.Base(o.vols[len(o.vols)-1])
	g := grow[last]
	if len(g) == 0 {
		return fmt.Errorf("no growth of volume %s recorded", last)
	}
	tEnd := g[len(g)-1].t
	t0 := tEnd
	for _, v := range o.vols {
		if gv := grow[filepath.Base(v)]; len(gv) > 0 {
			t0 = min(t0, gv[0].t)
		}
	}

	type perFile struct {
		written int64
		ok      bool
		vis     []int64 // per target, 0 = not seen
		closed  []int64 // per target, 0 = unknown
	}
	pf := make([]perFile, len(files))
	noVol := 0
	var maxBlockEnd int64
	for i, f := range files {
		pf[i].written, pf[i].ok = grow[f.end.Volume].reached(f.end.BlockEnd)
		if !pf[i].ok {
			noVol++
		}
		if f.end.Volume == last {
			maxBlockEnd = max(maxBlockEnd, f.end.BlockEnd)
		}
		pf[i].vis = make([]int64, len(tes))
		pf[i].closed = make([]int64, len(tes))
		rel := relOf(f.path, o.strip)
		for ti, te := range tes {
			pf[i].vis[ti] = te.visible[rel]
			if tmp, ok := te.renamedOf[rel]; ok {
				pf[i].closed[ti] = te.closed[tmp]
			}
		}
	}

	w := bufio.NewWriter(stdout)
	defer w.Flush()
	var jobDesc []string
	for _, j := range jobs {
		jobDesc = append(jobDesc, fmt.Sprintf("%s (JobId %d, status %c)", j.Job, j.JobID, max(j.Status, '?')))
	}
	fmt.Fprintf(w, "job %s: %d files (and %d directories) in %s; volume grew from %s to %s (%.3f s, %d size events; final %d bytes, last file record block ends at %d)\n",
		strings.Join(jobDesc, ", "), len(files), ndirs, strings.Join(o.vols, ","), stamp(t0), stamp(tEnd), float64(tEnd-t0)/1e9,
		len(g), g[len(g)-1].size, maxBlockEnd)
	if noVol > 0 {
		return fmt.Errorf("%d files end beyond any volume size recorded (was the watcher started late?)", noVol)
	}
	result := []string{fmt.Sprintf("files=%d", len(files)), fmt.Sprintf("job_secs=%s", sec(tEnd-t0))}
	sizeOf := map[string]int64{}
	for _, f := range files {
		sizeOf[relOf(f.path, o.strip)] = f.size
	}
	var completeAll int64
	for ti, te := range tes {
		var lat, latBig, latSmall, wlag, rwait []int64
		missing, scans := 0, 0
		var worst int
		for i, f := range files {
			v := pf[i].vis[ti]
			if v == 0 {
				missing++
				continue
			}
			if te.fromScan[relOf(f.path, o.strip)] {
				scans++
			}
			l := v - pf[i].written
			lat = append(lat, l)
			if f.size >= o.big {
				latBig = append(latBig, l)
			} else {
				latSmall = append(latSmall, l)
			}
			if c := pf[i].closed[ti]; c != 0 {
				wlag = append(wlag, c-pf[i].written)
				rwait = append(rwait, v-c)
			}
			if l > pf[worst].vis[ti]-pf[worst].written || pf[worst].vis[ti] == 0 {
				worst = i
			}
		}
		st := statsOf(lat)
		complete := max(te.last, te.lastAttrib)
		completeAll = max(completeAll, complete)
		ctime := newestCtime(o.roots[ti])
		fmt.Fprintf(w, "target %d %s: latency %s; not seen %d, seen only by a directory scan %d\n", ti, o.roots[ti], st, missing, scans)
		ct := "none"
		if ctime > 0 {
			ct = sec(ctime-tEnd) + " s"
		}
		fmt.Fprintf(w, "  complete (last event: file visible or directory metadata) %s s after the job's end (newest ctime under the root: %s)\n",
			sec(complete-tEnd), ct)
		fmt.Fprintf(w, "  files >= %d bytes: %s; smaller: %s\n", o.big, statsOf(latBig), statsOf(latSmall))
		fmt.Fprintf(w, "  split (files whose temporary name was seen): written under the temporary name after the block %s; then renamed into place after %s\n",
			statsOf(wlag), statsOf(rwait))
		if len(lat) > 0 {
			fmt.Fprintf(w, "  slowest: %s (%d bytes), %s s, its block written %s s into the job\n", files[worst].path, files[worst].size,
				sec(pf[worst].vis[ti]-pf[worst].written), sec(pf[worst].written-t0))
		}
		closeOf := func(rel string) int64 {
			if tmp, ok := te.renamedOf[rel]; ok {
				return te.closed[tmp]
			}
			return 0
		}
		fmt.Fprintf(w, "  renames into place: %s\n", bursts(te.renames, t0, sizeOf, closeOf, mem.at))
		slowest(w, files, lat, func(i int) (int64, int64, bool) {
			return pf[i].vis[ti], pf[i].closed[ti], pf[i].vis[ti] != 0
		}, func(i int) int64 { return pf[i].written }, o.big)
		p := fmt.Sprintf("t%d_", ti)
		result = append(result, p+"p50="+sec(st.p50), p+"p90="+sec(st.p90), p+"p99="+sec(st.p99), p+"max="+sec(st.maxv),
			p+"complete="+sec(complete-tEnd), p+"missing="+strconv.Itoa(missing))
	}
	fmt.Fprintf(w, "job end -> both targets complete: %s s", sec(completeAll-tEnd))
	result = append(result, "end_to_complete="+sec(completeAll-tEnd))
	if o.done > 0 {
		d := int64(o.done*1e9) - tEnd
		fmt.Fprintf(w, "; replicad's /status showed the job done on both %s s after the job's end", sec(d))
		result = append(result, "end_to_status_done="+sec(d))
	}
	fmt.Fprintf(w, "\nRESULT %s\n", strings.Join(result, " "))

	if o.tsv != "" {
		tf, err := os.Create(o.tsv)
		if err != nil {
			return err
		}
		tw := bufio.NewWriter(tf)
		fmt.Fprintf(tw, "path\ttype\tsize\tend_block\tblock_end\twritten_s")
		for ti := range tes {
			fmt.Fprintf(tw, "\tclosed%d_s\tvisible%d_s\tlatency%d_s", ti, ti, ti)
		}
		fmt.Fprintln(tw)
		rel := func(t int64) string {
			if t == 0 {
				return "-"
			}
			return sec(t - t0)
		}
		for i, f := range files {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s", strconv.Quote(f.path), f.typ, f.size, f.end.Block, f.end.BlockEnd, rel(pf[i].written))
			for ti := range tes {
				l := "-"
				if pf[i].vis[ti] != 0 {
					l = sec(pf[i].vis[ti] - pf[i].written)
				}
				fmt.Fprintf(tw, "\t%s\t%s\t%s", rel(pf[i].closed[ti]), rel(pf[i].vis[ti]), l)
			}
			fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if err := tf.Close(); err != nil {
			return err
		}
	}
	return nil
}

func stamp(ns int64) string { return time.Unix(0, ns).Format("15:04:05.000") }

// bursts describes the renames into place of a target: they come in
// batches (one syncfs, then the renames); a gap of more than 50 ms starts
// a new burst. A burst's flush is the time from the close of the last of
// its files written to its first rename: the syncfs, which writes what is
// dirty in the whole file system (the targets, and the volume if it is
// there), shown at the flush's start (/proc/meminfo Dirty + Writeback).
// The first bursts are listed as start(files, MiB; flush s, dirty MiB),
// the start in seconds from t0.
func bursts(rs []rename, t0 int64, sizeOf map[string]int64, closeOf func(string) int64, dirtyAt func(int64) (int64, bool)) string {
	if len(rs) == 0 {
		return "none"
	}
	s := slices.Clone(rs)
	slices.SortStableFunc(s, func(a, b rename) int { return cmp.Compare(a.t, b.t) })
	type burst struct{ start, files, bytes, lastClose int64 }
	var bs []burst
	for i, r := range s {
		if i == 0 || r.t-s[i-1].t > 50*int64(time.Millisecond) {
			bs = append(bs, burst{start: r.t})
		}
		b := &bs[len(bs)-1]
		b.files++
		b.bytes += sizeOf[r.path]
		b.lastClose = max(b.lastClose, closeOf(r.path))
	}
	var files, gaps, flush, dirty []int64
	var at []string
	for i, b := range bs {
		files = append(files, b.files)
		if i > 0 {
			gaps = append(gaps, b.start-bs[i-1].start)
		}
		fl, dm := "?", "?"
		if b.lastClose > 0 {
			flush = append(flush, b.start-b.lastClose)
			fl = sec(b.start - b.lastClose)
			if d, ok := dirtyAt(b.lastClose); ok {
				dirty = append(dirty, d)
				dm = strconv.FormatInt(d>>10, 10)
			}
		}
		if i < 16 {
			at = append(at, fmt.Sprintf("%s(%d, %.0f; %s, %s)", sec(b.start-t0), b.files, float64(b.bytes)/(1<<20), fl, dm))
		} else if i == 16 {
			at = append(at, "...")
		}
	}
	gs, fs, ds := statsOf(gaps), statsOf(flush), statsOf(dirty)
	return fmt.Sprintf("%d in %d bursts (gap > 50 ms); files per burst median %d max %d; between burst starts median %s s max %s s; "+
		"flush before the renames median %s s max %s s, with Dirty+Writeback median %d MiB max %d MiB when it started; bursts at s(files, MiB; flush s, dirty MiB): %s",
		len(s), len(bs), pct(sorted(files), 50), slices.Max(files), sec(gs.p50), sec(gs.maxv), sec(fs.p50), sec(fs.maxv),
		ds.p50>>10, ds.maxv>>10, strings.Join(at, " "))
}

func sorted(v []int64) []int64 { s := slices.Clone(v); slices.Sort(s); return s }

// slowest describes the slowest 1% of files (at least 1): how many are
// large, how long they waited under their temporary name, and whether they
// were written just before the job's end.
func slowest(w io.Writer, files []volFileInfo, lat []int64, at func(int) (vis, closed int64, ok bool), written func(int) int64, big int64) {
	if len(lat) == 0 {
		return
	}
	cut := pct(sorted(lat), 99)
	var n, nBig int
	var wait []int64
	var bytes int64
	for i := range files {
		vis, closed, ok := at(i)
		if !ok || vis-written(i) < cut {
			continue
		}
		n++
		bytes += files[i].size
		if files[i].size >= big {
			nBig++
		}
		if closed != 0 {
			wait = append(wait, vis-closed)
		}
	}
	fmt.Fprintf(w, "  slowest 1%% (latency >= p99 %s s): %d files, %d of them >= %d bytes, %d bytes in all; time under the temporary name after being written: %s\n",
		sec(cut), n, nBig, big, bytes, statsOf(wait))
}
