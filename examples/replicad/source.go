package main

import (
	"log/slog"
	"os"
	"path/filepath"

	"github.com/openbrc/brc/internal/config"
	"github.com/openbrc/brc/internal/source"
)

var _ stream = source.Stream(nil)

// openSource opens the data source of the configuration: volume_dir
// (source.Follow, its position in state_dir/source-follow.json) or
// fifo_path (source.FIFO, its spool in state_dir/fifo-spool unless
// fifo_copy_dir keeps a copy of each pass).
func openSource(cfg *config.Config, logger *slog.Logger) (stream, error) {
	if cfg.VolumeDir != "" {
		return source.NewFollow(cfg.VolumeDir, filepath.Join(cfg.StateDir, "source-follow.json"),
			source.FollowOptions{Idle: cfg.Idle, Logger: logger}), nil
	}
	spool := filepath.Join(cfg.StateDir, "fifo-spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return nil, err
	}
	if cfg.FIFOCopyDir != "" {
		if err := os.MkdirAll(cfg.FIFOCopyDir, 0o755); err != nil {
			return nil, err
		}
	}
	return source.NewFIFO(cfg.FIFOPath, source.FIFOOptions{CopyDir: cfg.FIFOCopyDir,
		SpoolDir: spool, Idle: cfg.Idle, Logger: logger}), nil
}
