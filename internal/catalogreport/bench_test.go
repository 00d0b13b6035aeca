package catalogreport

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openbrc/brc/replica"
	"github.com/openbrc/brc/report"
)

// TestReport1MFromCatalog is the benchmark: a report over a real
// catalog (bbolt) of 1,000,000 files, timed, with the peak RSS of the
// process. Run with BRC_REPORT_BENCH=1 (it writes a ~150 MB catalog).
func TestReport1MFromCatalog(t *testing.T) {
	if os.Getenv("BRC_REPORT_BENCH") == "" {
		t.Skip("set BRC_REPORT_BENCH=1")
	}
	// BRC_REPORT_CATALOG names the catalog file: filled when missing, so
	// that a second run measures the report alone, as `replicad report`
	// runs it, in a process of its own.
	path := os.Getenv("BRC_REPORT_CATALOG")
	if path == "" {
		path = filepath.Join(t.TempDir(), "catalog.db")
	}
	_, statErr := os.Stat(path)
	cat, err := replica.OpenCatalog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	idx := cat.Index("/mnt/dr")
	now := time.Unix(1800000000, 0)
	fill := time.Now()
	for i := range 1_000_000 {
		if statErr == nil {
			break // already filled
		}
		e := replica.IndexEntry{Size: int64(i % 100000), Mtime: 1, Ctime: 1, Ino: uint64(i), JobID: uint32(1 + i%7),
			Time: now.Add(-time.Duration(i%50000) * time.Second).Unix(), Chunks: make([][32]byte, 1)}
		// As Bacula sends a tree: directory by directory, in order.
		if err := idx.Put(fmt.Sprintf("/srv/data/d%04d/file-%07d.dat", i/1000, i), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := idx.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Logf("catalog filled in %v", time.Since(fill))
	hwm0 := vmHWM(t)
	start := time.Now()
	src, err := New(cat, []Target{{Name: "/mnt/dr", Root: "/mnt/dr"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := report.Compute(src, now, report.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if r.Totals.Files != 1_000_000 {
		t.Fatalf("%d files", r.Totals.Files)
	}
	t.Logf("report over 1,000,000 catalog files: %v; peak RSS %d MiB (%d MiB before computing)", took, vmHWM(t)>>10, hwm0>>10)
	if took > 10*time.Second {
		t.Errorf("took %v", took)
	}
}

// vmHWM is the peak resident set of the process, in KiB.
func vmHWM(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var n int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &n)
			return n
		}
	}
	return 0
}
