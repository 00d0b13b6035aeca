package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/openbrc/brc/crypt"
	"github.com/openbrc/brc/internal/config"
	"github.com/openbrc/brc/internal/run"
	"github.com/openbrc/brc/replica"
)

// keyCmdTimeout bounds an encrypt_key_cmd (or -key-cmd).
const keyCmdTimeout = 30 * time.Second

// encryptionKey returns the key the configuration gives (encrypt_key,
// encrypt_key_file or encrypt_key_cmd, at most one is set) and whether it
// gives one. The command runs with /bin/sh -c; each line of its standard
// error is logged.
func encryptionKey(ctx context.Context, cfg *config.Config, logger *slog.Logger) (crypt.Key, bool, error) {
	switch {
	case cfg.EncryptKey != "":
		k, err := crypt.ParseKey(cfg.EncryptKey)
		if err != nil {
			return crypt.Key{}, false, fmt.Errorf("encrypt_key: %w", err)
		}
		return k, true, nil
	case cfg.EncryptKeyFile != "":
		k, err := crypt.KeyFromFile(cfg.EncryptKeyFile)
		if err != nil {
			return crypt.Key{}, false, fmt.Errorf("encrypt_key_file: %w", err)
		}
		return k, true, nil
	case cfg.EncryptKeyCmd != "":
		k, err := keyFromCommand(ctx, cfg.EncryptKeyCmd, logger)
		if err != nil {
			return crypt.Key{}, false, fmt.Errorf("encrypt_key_cmd: %w", err)
		}
		return k, true, nil
	}
	return crypt.Key{}, false, nil
}

func keyFromCommand(ctx context.Context, cmd string, logger *slog.Logger) (crypt.Key, error) {
	return crypt.KeyFromCommand(ctx, run.Exec{}, []string{"/bin/sh", "-c", cmd}, keyCmdTimeout,
		func(format string, args ...any) { logger.Warn(fmt.Sprintf(format, args...)) })
}

// cmdDecrypt restores a plain tree from an encrypted target, for recovery.
func cmdDecrypt(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("decrypt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conf := fs.String("c", defaultConfig, "configuration `file` whose encrypt_key, encrypt_key_file or encrypt_key_cmd gives the key")
	keyFile := fs.String("key-file", "", "read the key from `FILE` (64 hexadecimal characters, mode 0600) instead of the configuration")
	keyCmd := fs.String("key-cmd", "", "run `COMMAND` with /bin/sh -c and read the key from its output instead of the configuration")
	prefix := fs.String("path-prefix", "", "backed-up `PATH` SRC holds, when SRC is a subdirectory of a target (or a single file: its path)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: replicad decrypt [-c FILE] [-key-file FILE | -key-cmd COMMAND] [-path-prefix PATH] SRC DST")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 2 {
		return usageError{errors.New("want SRC (an encrypted target, or part of one) and DST")}
	}
	if *keyFile != "" && *keyCmd != "" {
		return usageError{errors.New("give -key-file or -key-cmd, not both")}
	}
	src, dst := fs.Arg(0), fs.Arg(1)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	var key crypt.Key
	var err error
	switch {
	case *keyFile != "":
		key, err = crypt.KeyFromFile(*keyFile)
	case *keyCmd != "":
		key, err = keyFromCommand(ctx, *keyCmd, logger)
	default:
		var cfg *config.Config
		if cfg, err = config.Load(*conf); err != nil {
			return err
		}
		var ok bool
		key, ok, err = encryptionKey(ctx, cfg, logger)
		if err == nil && !ok {
			err = fmt.Errorf("%s sets no encrypt_key, encrypt_key_file nor encrypt_key_cmd (or give -key-file or -key-cmd)", *conf)
		}
	}
	if err != nil {
		return err
	}

	stats, err := replica.DecryptTarget(ctx, src, dst, crypt.NewKeyring(key), crypt.TreeOptions{
		PathPrefix: *prefix,
		Errorf:     func(e error) { fmt.Fprintf(stderr, "replicad decrypt: %v\n", e) },
	})
	fmt.Fprintf(stdout, "decrypted: %d files, %d bytes, %d directories, %d symbolic links, %d special files; %d failed\n",
		stats.Files, stats.Bytes, stats.Dirs, stats.Symlinks, stats.Special, stats.Failed)
	if errors.Is(err, crypt.ErrTreeFailed) {
		return fmt.Errorf("%d entries not decrypted (see above): damaged or tampered with, moved, or encrypted with another key", stats.Failed)
	}
	return err
}
