package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/openbrc/brc/internal/atomicfile"
	"github.com/openbrc/brc/internal/catalogreport"
	"github.com/openbrc/brc/internal/config"
	"github.com/openbrc/brc/replica"
	"github.com/openbrc/brc/report"
)

// cmdReport prints the RPO/RTO compliance report of the catalog in the
// configured state_dir, as of now.
func cmdReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, conf := configFlags("report", stderr)
	format := fs.String("format", "md", "output `format`: md (Markdown, for people) or json (schema "+report.SchemaVersion+")")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for a replicate that holds the catalog")
	if err := parseNoArgs(fs, "usage: replicad report [-c FILE] [-format json|md] [-wait DURATION]", args); err != nil {
		return err
	}
	write := report.WriteMarkdown
	switch *format {
	case "md":
	case "json":
		write = report.WriteJSON
	default:
		return usageError{fmt.Errorf("-format: %q is neither json nor md", *format)}
	}
	cfg, err := config.Load(*conf)
	if err != nil {
		return err
	}
	if err := checkReportParams(cfg); err != nil {
		return err
	}
	cat, err := openCatalogWait(ctx, filepath.Join(cfg.StateDir, "catalog.db"), *wait)
	if err != nil {
		return err
	}
	defer cat.Close()
	r, err := computeReport(cat, cfg, time.Now())
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := write(&b, r); err != nil {
		return err
	}
	_, err = stdout.Write(b.Bytes())
	return err
}

// openCatalogWait opens the catalog at path, which must exist, waiting up
// to wait while another process (a running replicate) holds it.
//
// The catalog is opened read-write: replica.OpenCatalog has no read-only
// mode. A read-only open would not let it run alongside a replicate
// either (bbolt's writer holds an exclusive lock), but would spare it
// write permission on the file.
func openCatalogWait(ctx context.Context, path string, wait time.Duration) (*replica.Catalog, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no catalog at %s: nothing was replicated with this state_dir yet", path)
		}
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		cat, err := replica.OpenCatalog(path) // waits a second for the lock itself
		if err == nil {
			return cat, nil
		}
		if !catalogLocked(path) {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("catalog %s is in use by another process (a replicate running?); gave up after %v (see -wait)", path, wait)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// catalogLocked reports whether another process holds the lock bbolt
// takes on the catalog file.
func catalogLocked(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return false
	}
	return errors.Is(err, syscall.EWOULDBLOCK)
}

// reportParams are the report parameters of the configuration.
func reportParams(cfg *config.Config) report.Params {
	p := report.DefaultParams()
	p.SLARPO, p.SLARTO, p.RTOOverhead = cfg.SLARPO, cfg.SLARTO, cfg.RTOOverhead
	return p
}

// checkReportParams refuses SLA keys the report cannot use (an SLA of 0
// seconds), before anything is replicated.
func checkReportParams(cfg *config.Config) error {
	switch {
	case cfg.SLARPO < time.Second:
		return fmt.Errorf("sla_rpo_secs = %d: the RPO must be at least 1 second", int64(cfg.SLARPO/time.Second))
	case cfg.SLARTO < time.Second:
		return fmt.Errorf("sla_rto_secs = %d: the RTO must be at least 1 second", int64(cfg.SLARTO/time.Second))
	}
	// Whatever else report.Params may refuse.
	_, err := report.Compute(report.MemSource{}, time.Now(), reportParams(cfg))
	return err
}

// computeReport computes the report of the configured targets from cat.
func computeReport(cat catalogreport.Catalog, cfg *config.Config, now time.Time) (*report.Report, error) {
	targets := make([]catalogreport.Target, len(cfg.Targets))
	for i, t := range cfg.Targets {
		targets[i] = catalogreport.Target{Name: t.Path, Root: t.Path}
	}
	src, err := catalogreport.New(cat, targets, catalogreport.Options{})
	if err != nil {
		return nil, err
	}
	return report.Compute(src, now, reportParams(cfg))
}

// writeRPOReport computes the report as of now and writes it to the
// configured rpo_report_dir, with a line on w saying where and what it
// concluded.
func writeRPOReport(w io.Writer, cat *replica.Catalog, cfg *config.Config) error {
	r, err := computeReport(cat, cfg, time.Now())
	if err != nil {
		return err
	}
	name, err := writeReportDir(cfg.RPOReportDir, r)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "report %s: verdict %s (RPO %s, RTO %s), %d files over the RPO\n",
		name, r.Verdict, r.RPOVerdict, r.RTOVerdict, r.Totals.RPOBreaches)
	return nil
}

// writeReportDir writes r under dir as report-<UTC time>.json and .md,
// then replaces latest.json and latest.md with the same, each atomically
// and durably. It returns the name of the dated JSON file.
func writeReportDir(dir string, r *report.Report) (string, error) {
	var js, md bytes.Buffer
	if err := report.WriteJSON(&js, r); err != nil {
		return "", err
	}
	if err := report.WriteMarkdown(&md, r); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	base := "report-" + r.GeneratedAt.UTC().Format("20060102T150405Z")
	for _, f := range []struct {
		name string
		data []byte
	}{
		{base + ".json", js.Bytes()}, {base + ".md", md.Bytes()},
		{"latest.json", js.Bytes()}, {"latest.md", md.Bytes()},
	} {
		if err := atomicfile.Replace(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return "", err
		}
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return "", err
	}
	return filepath.Join(dir, base+".json"), nil
}
