package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/config"
	"github.com/openbrc/brc/internal/run"
	"github.com/openbrc/brc/replica"
	"github.com/openbrc/brc/snapshot"
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
	// With a key, every target is encrypted (see replica.Encrypt).
	key, encrypt, err := encryptionKey(ctx, cfg, logger)
	if err != nil {
		return err
	}

	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return err
	}
	cat, err := replica.OpenCatalog(filepath.Join(cfg.StateDir, "catalog.db"))
	if err != nil {
		return err
	}
	defer cat.Close()

	var snap snapshot.Backend
	if cfg.SnapshotBackend != "none" {
		snap, err = snapshot.New(snapshot.Config{
			Backend: snapshot.Kind(cfg.SnapshotBackend), Keep: cfg.SnapshotKeep, Timeout: cfg.SnapshotTimeout,
			LVMLV: cfg.SnapshotLVMLV, LVMSize: cfg.SnapshotLVMSize, ZFSDataset: cfg.SnapshotZFSDataset,
			BtrfsDir: cfg.SnapshotBtrfsDir,
		}, run.Exec{})
		if err != nil {
			return err
		}
		for _, t := range cfg.Targets {
			if err := snap.Check(ctx, t.Path); err != nil {
				return fmt.Errorf("target %s: %w", t.Path, err)
			}
		}
	}

	var dests []replica.Destination
	for _, t := range cfg.Targets {
		opt := replica.MirrorOptions{
			StripPrefix:   cfg.StripPrefix,
			SkipUnchanged: cfg.SkipUnchanged,
			Verify:        cfg.VerifyAfter,
			DeleteRemoved: cfg.DeleteRemoved,
			Journal:       filepath.Join(cfg.StateDir, "journal", targetID(t.Path)+".json"),
			Groups:        groups(cfg.Groups),
			Logf:          func(format string, args ...any) { logger.Warn(fmt.Sprintf(format, args...)) },
		}
		if cfg.SkipUnchanged || cfg.RPOReportDir != "" {
			opt.Index = cat.Index(t.Path) // the report's file times
		}
		if cfg.Mode == "retention" {
			opt.Index = cat.Index(t.Path) // names versions, tells unchanged files
		}
		m := replica.NewMirror(t.Path, opt)
		var tg replica.Target = m
		if cfg.Mode == "retention" {
			tg = replica.NewRetention(m, cfg.RetentionVersions, opt.Index, replica.RetentionOptions{})
		}
		if encrypt {
			tg = replica.Encrypt(tg, key, replica.EncryptOptions{SkipUnchanged: cfg.SkipUnchanged, Verify: cfg.VerifyAfter})
		}
		if t.BWLimit > 0 {
			tg = replica.Limit(tg, t.BWLimit)
		}
		spool := filepath.Join(cfg.StateDir, "spool", targetID(t.Path))
		if err := os.MkdirAll(spool, 0o700); err != nil {
			return err
		}
		dests = append(dests, replica.Destination{Name: t.Path, Target: tg,
			QueueBytes: cfg.QueueSize, SpoolDir: spool, SpoolBytes: cfg.SpoolLimit})
	}
	e := &replica.Engine{
		Dests:    dests,
		Log:      cat,
		Replay:   *replay,
		Retry:    replica.RetryPolicy{Attempts: cfg.RetryAttempts, Backoff: cfg.RetryBackoff},
		Logger:   logger,
		DeferDir: filepath.Join(cfg.StateDir, "spool"),
	}
	if snap != nil {
		guards := snapshotHooks(snap, cfg.SnapshotKeep, logger)
		e.Hooks.BeforeJob, e.Hooks.AfterJob = guards.before, guards.after
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

func groups(gs []config.Group) []replica.Group {
	var out []replica.Group
	for _, g := range gs {
		out = append(out, replica.Group{Name: g.Name, Paths: g.Paths})
	}
	return out
}

// targetID names a target's files in the state directory.
func targetID(root string) string {
	id := sha256.Sum256([]byte(root))
	return hex.EncodeToString(id[:8])
}

// guards keeps the snapshot of each target taken before its job.
type guards struct {
	b      snapshot.Backend
	keep   int
	logger *slog.Logger
	mu     sync.Mutex
	m      map[string]*snapshot.Guard
}

func snapshotHooks(b snapshot.Backend, keep int, logger *slog.Logger) *guards {
	return &guards{b: b, keep: keep, logger: logger, m: map[string]*snapshot.Guard{}}
}

func (g *guards) before(ctx context.Context, target string, job *bacularec.Job) error {
	gd, err := snapshot.Before(ctx, g.b, target, job.JobID, g.keep)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.m[target] = gd
	g.mu.Unlock()
	return nil
}

// after keeps the snapshot when the target holds the whole job and Bacula
// ended it well, and rolls the target back to it otherwise.
func (g *guards) after(ctx context.Context, target string, job *bacularec.Job, err error) {
	g.mu.Lock()
	gd := g.m[target]
	delete(g.m, target)
	g.mu.Unlock()
	if gd == nil {
		return
	}
	ok := err == nil && job.OK()
	if derr := gd.Done(ctx, ok); derr != nil {
		g.logger.Error("snapshot", "target", target, "job", job.Job, "rolled back", !ok, "err", derr)
	} else if !ok {
		g.logger.Warn("target rolled back to its snapshot", "target", target, "job", job.Job, "snapshot", gd.Snapshot().Name)
	}
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
