package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/config"
	"github.com/openbrc/brc/replica"
)

const defaultConfig = "/etc/openbrc/replicad.conf"

// cmdReplicate replicates the jobs of volumes on disk to the configured
// targets, with the engine the daemon uses.
func cmdReplicate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replicate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conf := fs.String("c", defaultConfig, "configuration `file`")
	replay := fs.Bool("replay", false, "send jobs again that a target already holds completely")
	verbose := fs.Bool("v", false, "log every file not replicated and every retry")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to `FILE` (for performance work)")
	memprofile := fs.String("memprofile", "", "write a heap profile to `FILE` at the end (for performance work)")
	var rf readerFlags
	rf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: replicad replicate [-c FILE] [-replay] [flags] VOLUME...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	vols := fs.Args()
	if len(vols) == 0 {
		return usageError{errors.New("no volume given")}
	}
	stop, err := startProfile(*cpuprofile)
	if err != nil {
		return err
	}
	defer stop()
	defer writeHeapProfile(*memprofile)
	cfg, err := config.Load(*conf)
	if err != nil {
		return err
	}
	if cfg.RPOReportDir != "" {
		if err := checkReportParams(cfg); err != nil {
			return err
		}
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return err
	}
	cat, err := replica.OpenCatalog(filepath.Join(cfg.StateDir, "catalog.db"))
	if err != nil {
		return err
	}
	defer cat.Close()

	dests, hooks, err := buildTargets(ctx, cfg, cat, logger, nil)
	if err != nil {
		return err
	}
	e := &replica.Engine{
		Dests:    dests,
		Log:      cat,
		Replay:   *replay,
		Retry:    replica.RetryPolicy{Attempts: cfg.RetryAttempts, Backoff: cfg.RetryBackoff},
		Logger:   logger,
		DeferDir: filepath.Join(cfg.StateDir, "spool"),
		Hooks:    hooks,
	}
	sum, err := e.Run(ctx, func(context.Context) (*bacularec.Files, error) { return rf.files(vols) })
	if sum != nil {
		printSummary(stdout, sum)
	}
	if cfg.RPOReportDir != "" && sum != nil && ctx.Err() == nil {
		if rerr := writeRPOReport(stdout, cat, cfg); rerr != nil {
			err = errors.Join(err, fmt.Errorf("rpo_report_dir: %w", rerr))
		}
	}
	if err != nil {
		return err
	}
	if sum.Failed() {
		return errors.New("some targets did not receive everything (see above)")
	}
	return nil
}

func printSummary(w io.Writer, sum *replica.Summary) {
	fmt.Fprintf(w, "read: %d jobs, %d files, %d bytes, %d reader notices\n", sum.Jobs, sum.Files, sum.Bytes, sum.Notices)
	for _, t := range sum.Targets {
		state := "ok"
		switch {
		case t.Err != "":
			state = "FAILED"
		case !t.OK():
			state = "INCOMPLETE"
		}
		fmt.Fprintf(w, "target %s: %s: %d files, %d bytes sent, %d written, %d unchanged skipped, %d failed; jobs %d done, %d left; %d passes",
			t.Name, state, t.Files, t.Bytes, t.Written, t.Skipped, t.Failed, t.JobsDone, t.JobsLeft, t.Attempts)
		if t.MaxSpool > 0 {
			fmt.Fprintf(w, ", spooled up to %d bytes", t.MaxSpool)
		}
		if t.Lagged > 0 {
			fmt.Fprintf(w, ", lagged %d times", t.Lagged)
		}
		fmt.Fprintln(w)
		if t.Err != "" {
			fmt.Fprintf(w, "  error: %s\n", t.Err)
		}
		for _, p := range t.FailedIDs {
			fmt.Fprintf(w, "  not replicated: %s\n", p)
		}
	}
}
