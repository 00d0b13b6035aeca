package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/config"
	"github.com/openbrc/brc/internal/metrics"
	"github.com/openbrc/brc/internal/run"
	"github.com/openbrc/brc/replica"
	"github.com/openbrc/brc/snapshot"
)

// buildTargets makes the destinations of the configuration, the way
// replicate and run share: each target a Mirror (or Retention), encrypted
// with the configured key, bandwidth-limited, with its spool and journal
// in state_dir. With a snapshot_backend, every target is checked with it
// and the returned hooks take a snapshot before each job and roll back a
// job that failed; snapEvent (may be nil) hears of each snapshot event
// (metrics.Snapshot*). cat gives the state indexes; nil (check-config)
// keeps none.
func buildTargets(ctx context.Context, cfg *config.Config, cat *replica.Catalog, logger *slog.Logger,
	snapEvent func(target, event string)) ([]replica.Destination, replica.Hooks, error) {
	var hooks replica.Hooks
	// With a key, every target is encrypted (see replica.Encrypt).
	key, encrypt, err := encryptionKey(ctx, cfg, logger)
	if err != nil {
		return nil, hooks, err
	}
	var snap snapshot.Backend
	if cfg.SnapshotBackend != "none" {
		snap, err = snapshot.New(snapshot.Config{
			Backend: snapshot.Kind(cfg.SnapshotBackend), Keep: cfg.SnapshotKeep, Timeout: cfg.SnapshotTimeout,
			LVMLV: cfg.SnapshotLVMLV, LVMSize: cfg.SnapshotLVMSize, ZFSDataset: cfg.SnapshotZFSDataset,
			BtrfsDir: cfg.SnapshotBtrfsDir,
		}, run.Exec{})
		if err != nil {
			return nil, hooks, err
		}
		for _, t := range cfg.Targets {
			if err := snap.Check(ctx, t.Path); err != nil {
				return nil, hooks, fmt.Errorf("target %s: %w", t.Path, err)
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
			History:       filepath.Join(cfg.StateDir, "history", targetID(t.Path)),
			Groups:        groups(cfg.Groups),
			Logf:          func(format string, args ...any) { logger.Warn(fmt.Sprintf(format, args...)) },
		}
		if cat != nil && (cfg.SkipUnchanged || cfg.RPOReportDir != "" || cfg.Mode == "retention") {
			// The report's file times; with retention, names versions and
			// tells unchanged files.
			opt.Index = cat.Index(t.Path)
		}
		m := replica.NewMirror(t.Path, opt)
		var tg replica.Target = m
		if cfg.Mode == "retention" {
			tg = replica.NewRetention(m, cfg.RetentionVersions, opt.Index, replica.RetentionOptions{})
		}
		if encrypt {
			eopt := replica.EncryptOptions{SkipUnchanged: cfg.SkipUnchanged, Verify: cfg.VerifyAfter}
			if cat != nil && cfg.SkipUnchanged {
				// Keyed hashes of the plaintext: an unchanged file costs
				// a stat, as on a clear target, and the catalog shows
				// no content equality (see replica.Encrypt).
				eopt.Index = cat.EncryptedIndex(t.Path)
			}
			tg = replica.Encrypt(tg, key, eopt)
		}
		if t.BWLimit > 0 {
			tg = replica.Limit(tg, t.BWLimit)
		}
		spool := filepath.Join(cfg.StateDir, "spool", targetID(t.Path))
		if err := os.MkdirAll(spool, 0o700); err != nil {
			return nil, hooks, err
		}
		dests = append(dests, replica.Destination{Name: t.Path, Target: tg,
			QueueBytes: cfg.QueueSize, SpoolDir: spool, SpoolBytes: cfg.SpoolLimit})
	}
	if snap != nil {
		g := snapshotHooks(snap, cfg.SnapshotKeep, logger)
		g.event = snapEvent
		hooks.BeforeJob, hooks.AfterJob = g.before, g.after
	}
	return dests, hooks, nil
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
	event  func(target, event string) // nil: not told
	mu     sync.Mutex
	m      map[string]*snapshot.Guard
}

func snapshotHooks(b snapshot.Backend, keep int, logger *slog.Logger) *guards {
	return &guards{b: b, keep: keep, logger: logger, m: map[string]*snapshot.Guard{}}
}

func (g *guards) tell(target, event string) {
	if g.event != nil {
		g.event(target, event)
	}
}

func (g *guards) before(ctx context.Context, target string, job *bacularec.Job) error {
	gd, err := snapshot.Before(ctx, g.b, target, job.JobID, g.keep)
	if err != nil {
		g.tell(target, metrics.SnapshotFailed)
		return err
	}
	g.tell(target, metrics.SnapshotCreated)
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
	// A stop (SIGTERM) cancels ctx, and is exactly when a target must be
	// rolled back: the rollback gets its own time (each command keeps
	// the backend's timeout).
	ctx = context.WithoutCancel(ctx)
	if derr := gd.Done(ctx, ok); derr != nil {
		g.tell(target, metrics.SnapshotFailed)
		g.logger.Error("snapshot", "target", target, "job", job.Job, "rolled back", !ok, "err", derr)
	} else if !ok {
		g.tell(target, metrics.SnapshotRolledBack)
		g.logger.Warn("target rolled back to its snapshot", "target", target, "job", job.Job, "snapshot", gd.Snapshot().Name)
	} else {
		g.tell(target, metrics.SnapshotKept)
	}
}
