package report

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// synthSource streams n synthetic files on one target without holding
// them: each record is made in the callback loop, as a catalog cursor
// would. Ages spread over 0-6 h so that about a third breach the default
// 4 h RPO and the worst-files heap is busy. With reuse, paths alias one
// buffer (as strings over bbolt pages would); otherwise each path is a
// fresh string, as a copying catalog would give.
type synthSource struct {
	n     int
	reuse bool
}

func (synthSource) Targets() []TargetInfo {
	return []TargetInfo{{Name: "big", Root: "/dr/big", Bandwidth: 200 << 20, State: StateOK,
		LastSuccess: fixedNow.Add(-time.Hour)}}
}

func (s synthSource) Files(_ string, fn func(FileRecord) error) error {
	buf := make([]byte, 0, 64)
	x := uint64(0x9E3779B97F4A7C15)
	for i := range s.n {
		x ^= x << 13 // xorshift64: cheap, deterministic
		x ^= x >> 7
		x ^= x << 17
		buf = append(buf[:0], "/data/d"...)
		buf = strconv.AppendInt(buf, int64(i/1000), 10)
		buf = append(buf, "/file"...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, ".dat"...)
		var path string
		if s.reuse {
			path = unsafeString(buf)
		} else {
			path = string(buf)
		}
		err := fn(FileRecord{
			Path:       path,
			Size:       int64(x>>44) + 1, // up to 1 MiB
			Replicated: fixedNow.Add(-time.Duration(x%(6*3600)) * time.Second),
			JobID:      uint32(i % 97),
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (synthSource) Jobs(_ string, fn func(JobRecord) error) error {
	for i := range 97 {
		err := fn(JobRecord{JobID: uint32(i), Name: "Nightly", Level: "I", Status: "T",
			Start: fixedNow.Add(-time.Duration(97-i) * time.Hour), End: fixedNow.Add(-time.Duration(96-i) * time.Hour),
			Bytes: 1 << 30, Files: 10000})
		if err != nil {
			return err
		}
	}
	return nil
}

func BenchmarkCompute1M(b *testing.B) {
	for _, reuse := range []bool{false, true} {
		name := "paths=fresh"
		if reuse {
			name = "paths=reused"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			src := synthSource{n: 1_000_000, reuse: reuse}
			for b.Loop() {
				r, err := Compute(src, fixedNow, DefaultParams())
				if err != nil {
					b.Fatal(err)
				}
				if r.Totals.Files != 1_000_000 {
					b.Fatalf("%d files", r.Totals.Files)
				}
			}
			if hwm, err := vmHWM(); err == nil {
				b.ReportMetric(float64(hwm)/(1<<20), "MiB-peak-RSS")
			}
		})
	}
}

// TestComputeRSS measures one Compute of a million files: wall time, heap
// allocation and the process's peak RSS (VmHWM). It is slow enough to stay
// out of the default run: BRC_REPORT_BENCH=1 go test -run ComputeRSS -v
// ./report/. Run it alone, so that VmHWM is this test's.
func TestComputeRSS(t *testing.T) {
	if os.Getenv("BRC_REPORT_BENCH") != "1" {
		t.Skip("set BRC_REPORT_BENCH=1 to measure")
	}
	const n = 1_000_000
	base, err := vmHWM()
	if err != nil {
		t.Skip(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	r, err := Compute(synthSource{n: n}, fixedNow, DefaultParams())
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	hwm, err := vmHWM()
	if err != nil {
		t.Fatal(err)
	}
	tg := r.Targets[0]
	t.Logf("%d files, %d breaches, RPO max %d s p95 %d s median %d s", tg.Files, tg.RPOBreaches,
		tg.RPO.MaxSecs, tg.RPO.P95Secs, tg.RPO.MedianSecs)
	t.Logf("time %v; allocated %.1f MiB in %d allocations; peak RSS (VmHWM) %.1f MiB, %.1f MiB before",
		elapsed, float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), after.Mallocs-before.Mallocs,
		float64(hwm)/(1<<20), float64(base)/(1<<20))
	if elapsed > 10*time.Second {
		t.Errorf("took %v, budget 10s", elapsed)
	}
	if hwm > 200<<20 {
		t.Errorf("peak RSS %d MiB, budget 200 MiB", hwm>>20)
	}
}

// vmHWM returns the peak resident set size of this process in bytes, from
// /proc/self/status (Linux).
func vmHWM() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, os.ErrNotExist
}
