package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/openbrc/brc/internal/extract"
)

// cmdCheckConfig validates a configuration for run without starting
// anything, and prints what it understood.
func cmdCheckConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, conf := configFlags("check-config", stderr)
	if err := parseNoArgs(fs, "usage: replicad check-config [-c FILE]", args); err != nil {
		return err
	}
	cfg, err := loadRunConfig(*conf)
	if err != nil {
		return err
	}
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	fmt.Fprintf(stdout, "config %s\n", *conf)
	// The data source.
	switch {
	case cfg.VolumeDir != "":
		if fi, err := os.Stat(cfg.VolumeDir); err != nil {
			bad("volume_dir: %v", err)
		} else if !fi.IsDir() {
			bad("volume_dir: %s is not a directory", cfg.VolumeDir)
		}
		fmt.Fprintf(stdout, "source: volume_dir %s, a pass ends after %v of quiet\n", cfg.VolumeDir, cfg.Idle)
	default:
		fi, err := os.Stat(cfg.FIFOPath)
		switch {
		case errors.Is(err, os.ErrNotExist):
			fmt.Fprintf(stdout, "note: fifo_path %s does not exist yet\n", cfg.FIFOPath)
		case err != nil:
			bad("fifo_path: %v", err)
		case fi.Mode()&os.ModeNamedPipe == 0:
			bad("fifo_path: %s exists and is not a FIFO", cfg.FIFOPath)
		}
		fmt.Fprintf(stdout, "source: fifo_path %s", cfg.FIFOPath)
		if cfg.FIFOCopyDir != "" {
			fmt.Fprintf(stdout, ", copies in %s", cfg.FIFOCopyDir)
		}
		fmt.Fprintf(stdout, ", a pass ends after %v of quiet\n", cfg.Idle)
	}
	// The targets: reachable and writable (created if need be).
	for _, t := range cfg.Targets {
		state := "writable"
		if err := probeDir(t.Path); err != nil {
			bad("target %s: %v", t.Path, err)
			state = "NOT WRITABLE"
		}
		limit := ""
		if t.BWLimit > 0 {
			limit = fmt.Sprintf(", bwlimit %d bytes/s", t.BWLimit)
		}
		fmt.Fprintf(stdout, "target %s: %s%s\n", t.Path, state, limit)
	}
	if err := probeDir(cfg.StateDir); err != nil {
		bad("state_dir %s: %v", cfg.StateDir, err)
	}
	// The key and the snapshot backend, as the daemon builds them.
	if _, _, err := buildTargets(ctx, cfg, nil, logger, nil); err != nil {
		bad("%v", err)
	}
	enc := "no"
	switch {
	case cfg.EncryptKey != "":
		enc = "yes (encrypt_key)"
	case cfg.EncryptKeyFile != "":
		enc = "yes (encrypt_key_file " + cfg.EncryptKeyFile + ")"
	case cfg.EncryptKeyCmd != "":
		enc = "yes (encrypt_key_cmd)"
	}
	fmt.Fprintf(stdout, "mode %s, skip_unchanged %v, verify_after %v, delete_removed %v, snapshot_backend %s, encryption %s\n",
		cfg.Mode, cfg.SkipUnchanged, cfg.VerifyAfter, cfg.DeleteRemoved, cfg.SnapshotBackend, enc)
	fmt.Fprintf(stdout, "state_dir %s, retries %d (backoff %v)\n", cfg.StateDir, cfg.RetryAttempts, cfg.RetryBackoff)
	// The plugin socket.
	_, skipped, err := cfg.PluginUIDs()
	if err != nil {
		bad("%v", err)
	}
	users := []string{"root"}
	for _, u := range cfg.PluginUsers {
		if err == nil && u != "root" && !slices.Contains(skipped, u) {
			users = append(users, u)
		}
	}
	fmt.Fprintf(stdout, "plugin socket %s, allowed: %s", cfg.PluginSocket, strings.Join(users, ", "))
	if len(skipped) > 0 {
		fmt.Fprintf(stdout, " (no user %s)", strings.Join(skipped, ", "))
	}
	fmt.Fprintln(stdout)
	if cfg.MetricsListen == "" {
		fmt.Fprintln(stdout, "metrics and status: off")
	} else {
		fmt.Fprintf(stdout, "metrics and status: http://%s/metrics, /status\n", cfg.MetricsListen)
	}
	if f := cfg.Failover; f.Enabled() {
		fmt.Fprintf(stdout, "failover: healthcheck %q every %v (timeout %v), promote after %d failures, failback after %d recoveries and %v; promote_cmd %q, demote_cmd %q\n",
			f.HealthcheckCmd, f.HealthcheckInterval, f.HealthcheckTimeout, f.HealthcheckFailures, f.HealthcheckRecoveries,
			f.FailbackHold, f.PromoteCmd, f.DemoteCmd)
	} else {
		fmt.Fprintln(stdout, "failover: off (no healthcheck_cmd)")
	}
	fmt.Fprintf(stdout, "log_level %s\n", cfg.LogLevel)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(stdout, "PROBLEM: %s\n", p)
		}
		return fmt.Errorf("%s: %d problems (see above)", *conf, len(problems))
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// probeDir creates dir if need be and checks that a file can be created
// in it.
func probeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, extract.TempPrefix+"check-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}
