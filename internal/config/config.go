// Package config reads replicad's configuration file: key=value lines,
// '#' starts a comment line, keys named as in the original product
// (targets, mode, delete_removed, ...). Unknown keys, repeated keys and
// bad values are errors naming the file, the line and the key.
package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/openbrc/brc/failover"
)

// Target is one entry of the targets key: a root directory and its
// options (path:bwlimit=1M).
type Target struct {
	Path    string
	BWLimit int64 // bytes per second, 0: unlimited
}

// Group is a consistency group: paths whose changes must appear together.
type Group struct {
	Name  string
	Paths []string
}

// Config is the whole file, with defaults for what it does not set.
type Config struct {
	Targets             []Target
	Mode                string // "mirror" (default) or "retention"
	DeleteRemoved       bool
	DeleteRemovedUnsafe bool
	RetentionVersions   int
	SkipUnchanged       bool
	VerifyAfter         bool
	StripPrefix         string
	Groups              []Group       // consistency_groups
	StateDir            string        // default /var/lib/openbrc
	QueueSize           int64         // per target, bytes (default 8M)
	SpoolLimit          int64         // per target, bytes (default 1G)
	RetryAttempts       int           // default 3
	RetryBackoff        time.Duration // default 10s

	SnapshotBackend    string // none (default), lvm, zfs, btrfs
	SnapshotKeep       int
	SnapshotTimeout    time.Duration
	SnapshotLVMLV      string
	SnapshotLVMSize    string
	SnapshotZFSDataset string
	SnapshotBtrfsDir   string

	RPOReportDir string
	SLARPO       time.Duration // default 4h
	SLARTO       time.Duration // default 1h
	RTOOverhead  time.Duration // default 5m

	EncryptKey     string
	EncryptKeyFile string
	EncryptKeyCmd  string

	// The daemon ("replicad run"). Exactly one of VolumeDir and FIFOPath
	// is its data source (see CheckRun).
	VolumeDir     string        // volume_dir: the SD File device directory to follow
	FIFOPath      string        // fifo_path: a FIFO the SD writes volumes into
	FIFOCopyDir   string        // fifo_copy_dir: where what is read from the FIFO is kept
	PluginSocket  string        // plugin_socket (default /run/openbrc/replicad.sock)
	PluginUsers   []string      // plugin_users: allowed besides root (default bacula)
	MetricsListen string        // metrics_listen (default 127.0.0.1:9465); "" disables
	LogLevel      string        // log_level: debug, info (default), warn, error
	Idle          time.Duration // idle_secs: quiet that ends a pass (default 5s)

	// Failover (healthcheck_cmd ...), see package failover.
	Failover failover.Config

	lines map[string]int // the line of each key set
	name  string
}

// Default returns the configuration of an empty file.
func Default() *Config {
	return &Config{
		Mode: "mirror", StateDir: "/var/lib/openbrc",
		QueueSize: 8 << 20, SpoolLimit: 1 << 30,
		RetryAttempts: 3, RetryBackoff: 10 * time.Second,
		SnapshotBackend: "none",
		SLARPO:          14400 * time.Second, SLARTO: 3600 * time.Second, RTOOverhead: 300 * time.Second,
		PluginSocket: DefaultPluginSocket, PluginUsers: []string{"bacula"},
		MetricsListen: DefaultMetricsListen, LogLevel: "info", Idle: 5 * time.Second,
		Failover: failover.Defaults(),
	}
}

// Daemon defaults.
const (
	DefaultPluginSocket  = "/run/openbrc/replicad.sock"
	DefaultMetricsListen = "127.0.0.1:9465"
)

// Error is a problem in the file.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("config: %s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("config: %s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
}

// ErrNoTargets: the file names no target.
var ErrNoTargets = errors.New("config: no targets")

// Load reads the file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	return Parse(f, path)
}

type setter func(c *Config, v string) error

var keys = map[string]setter{
	"targets":               setTargets,
	"mode":                  func(c *Config, v string) error { return oneOf(&c.Mode, v, "mirror", "retention") },
	"delete_removed":        boolean(func(c *Config) *bool { return &c.DeleteRemoved }),
	"delete_removed_unsafe": boolean(func(c *Config) *bool { return &c.DeleteRemovedUnsafe }),
	"retention_versions":    integer(func(c *Config) *int { return &c.RetentionVersions }, 0, 10000),
	"skip_unchanged":        boolean(func(c *Config) *bool { return &c.SkipUnchanged }),
	"verify_after":          boolean(func(c *Config) *bool { return &c.VerifyAfter }),
	"strip_prefix":          func(c *Config, v string) error { return absPath(&c.StripPrefix, v) },
	"consistency_groups":    setGroups,
	"state_dir":             func(c *Config, v string) error { return absPath(&c.StateDir, v) },
	"queue_size":            size(func(c *Config) *int64 { return &c.QueueSize }),
	"spool_limit":           size(func(c *Config) *int64 { return &c.SpoolLimit }),
	"retry_attempts":        integer(func(c *Config) *int { return &c.RetryAttempts }, 0, 1000),
	"retry_backoff":         seconds(func(c *Config) *time.Duration { return &c.RetryBackoff }),
	"snapshot_backend":      func(c *Config, v string) error { return oneOf(&c.SnapshotBackend, v, "none", "lvm", "zfs", "btrfs") },
	"snapshot_keep":         integer(func(c *Config) *int { return &c.SnapshotKeep }, 1, 1000),
	"snapshot_timeout":      seconds(func(c *Config) *time.Duration { return &c.SnapshotTimeout }),
	"snapshot_lvm_lv":       str(func(c *Config) *string { return &c.SnapshotLVMLV }),
	"snapshot_lvm_size":     str(func(c *Config) *string { return &c.SnapshotLVMSize }),
	"snapshot_zfs_dataset":  str(func(c *Config) *string { return &c.SnapshotZFSDataset }),
	"snapshot_btrfs_dir":    func(c *Config, v string) error { return absPath(&c.SnapshotBtrfsDir, v) },
	"rpo_report_dir":        func(c *Config, v string) error { return absPath(&c.RPOReportDir, v) },
	"sla_rpo_secs":          seconds(func(c *Config) *time.Duration { return &c.SLARPO }),
	"sla_rto_secs":          seconds(func(c *Config) *time.Duration { return &c.SLARTO }),
	"rto_overhead_secs":     seconds(func(c *Config) *time.Duration { return &c.RTOOverhead }),
	"encrypt_key":           str(func(c *Config) *string { return &c.EncryptKey }),
	"encrypt_key_file":      func(c *Config, v string) error { return absPath(&c.EncryptKeyFile, v) },
	"encrypt_key_cmd":       str(func(c *Config) *string { return &c.EncryptKeyCmd }),

	"volume_dir":     func(c *Config, v string) error { return absPath(&c.VolumeDir, v) },
	"fifo_path":      func(c *Config, v string) error { return absPath(&c.FIFOPath, v) },
	"fifo_copy_dir":  func(c *Config, v string) error { return absPath(&c.FIFOCopyDir, v) },
	"plugin_socket":  func(c *Config, v string) error { return absPath(&c.PluginSocket, v) },
	"plugin_users":   setPluginUsers,
	"metrics_listen": setMetricsListen,
	"log_level":      func(c *Config, v string) error { return oneOf(&c.LogLevel, v, "debug", "info", "warn", "error") },
	"idle_secs":      positiveSeconds(func(c *Config) *time.Duration { return &c.Idle }),

	"healthcheck_cmd":        str(func(c *Config) *string { return &c.Failover.HealthcheckCmd }),
	"healthcheck_interval":   positiveSeconds(func(c *Config) *time.Duration { return &c.Failover.HealthcheckInterval }),
	"healthcheck_timeout":    positiveSeconds(func(c *Config) *time.Duration { return &c.Failover.HealthcheckTimeout }),
	"healthcheck_failures":   integer(func(c *Config) *int { return &c.Failover.HealthcheckFailures }, 1, 1000),
	"healthcheck_recoveries": integer(func(c *Config) *int { return &c.Failover.HealthcheckRecoveries }, 1, 1000),
	"failback_hold":          seconds(func(c *Config) *time.Duration { return &c.Failover.FailbackHold }),
	"promote_cmd":            str(func(c *Config) *string { return &c.Failover.PromoteCmd }),
	"demote_cmd":             str(func(c *Config) *string { return &c.Failover.DemoteCmd }),
	"hook_timeout":           positiveSeconds(func(c *Config) *time.Duration { return &c.Failover.HookTimeout }),
	"hook_retries":           integer(func(c *Config) *int { return &c.Failover.HookRetries }, 0, 1000),
	"hook_backoff":           positiveSeconds(func(c *Config) *time.Duration { return &c.Failover.HookBackoff }),
	"hook_backoff_max":       positiveSeconds(func(c *Config) *time.Duration { return &c.Failover.HookBackoffMax }),
}

// Parse reads a configuration from r; name is used in errors.
func Parse(r io.Reader, name string) (*Config, error) {
	c := Default()
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, &Error{File: name, Line: n, Msg: fmt.Sprintf("%q is not key=value", line)}
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		set, known := keys[k]
		if !known {
			return nil, &Error{File: name, Line: n, Key: k, Msg: "unknown key"}
		}
		if prev, dup := seen[k]; dup {
			return nil, &Error{File: name, Line: n, Key: k, Msg: fmt.Sprintf("already set on line %d", prev)}
		}
		seen[k] = n
		if err := set(c, v); err != nil {
			return nil, &Error{File: name, Line: n, Key: k, Msg: err.Error()}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("config: %s: %w", name, err)
	}
	line := func(k string) int { return seen[k] }
	if len(c.Targets) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoTargets, name)
	}
	if c.Mode == "retention" && c.RetentionVersions == 0 {
		return nil, &Error{File: name, Line: line("mode"), Key: "mode", Msg: "retention needs retention_versions >= 1"}
	}
	if c.DeleteRemoved && c.SnapshotBackend == "none" && !c.DeleteRemovedUnsafe {
		return nil, &Error{File: name, Line: line("delete_removed"), Key: "delete_removed",
			Msg: "refused without a snapshot_backend to roll back to (set delete_removed_unsafe = yes to accept the risk)"}
	}
	nkeys := 0
	for _, k := range []string{"encrypt_key", "encrypt_key_file", "encrypt_key_cmd"} {
		if _, ok := seen[k]; ok {
			nkeys++
		}
	}
	if nkeys > 1 {
		return nil, &Error{File: name, Line: n, Key: "encrypt_key", Msg: "set only one of encrypt_key, encrypt_key_file, encrypt_key_cmd"}
	}
	if err := c.Failover.Validate(); err != nil {
		k := "healthcheck_cmd"
		for _, fk := range failoverKeys {
			if _, ok := seen[fk]; ok && strings.Contains(err.Error(), fk) {
				k = fk
				break
			}
		}
		return nil, &Error{File: name, Line: line(k), Key: k, Msg: err.Error()}
	}
	c.lines, c.name = seen, name
	return c, nil
}

var failoverKeys = []string{"promote_cmd", "demote_cmd", "healthcheck_interval", "healthcheck_timeout",
	"healthcheck_failures", "healthcheck_recoveries", "failback_hold", "hook_timeout", "hook_retries",
	"hook_backoff_max", "hook_backoff", "healthcheck_cmd"}

// CheckRun checks what only the daemon ("replicad run") needs: exactly
// one data source, volume_dir or fifo_path; fifo_copy_dir only with
// fifo_path.
func (c *Config) CheckRun() error {
	switch {
	case c.VolumeDir == "" && c.FIFOPath == "":
		return &Error{File: c.name, Line: 0, Key: "volume_dir", Msg: "set volume_dir or fifo_path (the data source of replicad run)"}
	case c.VolumeDir != "" && c.FIFOPath != "":
		return &Error{File: c.name, Line: max(c.lines["volume_dir"], c.lines["fifo_path"]), Key: "volume_dir",
			Msg: "set only one of volume_dir, fifo_path"}
	case c.FIFOCopyDir != "" && c.FIFOPath == "":
		return &Error{File: c.name, Line: c.lines["fifo_copy_dir"], Key: "fifo_copy_dir", Msg: "needs fifo_path"}
	}
	return nil
}

// PluginUIDs resolves plugin_users to user ids (root is always allowed
// and need not be listed). A user set in the file that does not exist is
// an error; the default user (bacula) is skipped when it does not exist,
// and named in skipped.
func (c *Config) PluginUIDs() (uids []uint32, skipped []string, err error) {
	_, explicit := c.lines["plugin_users"]
	for _, name := range c.PluginUsers {
		u, err := user.Lookup(name)
		if err != nil {
			var unknown user.UnknownUserError
			if !explicit && errors.As(err, &unknown) {
				skipped = append(skipped, name)
				continue
			}
			return nil, nil, &Error{File: c.name, Line: c.lines["plugin_users"], Key: "plugin_users", Msg: err.Error()}
		}
		id, err := strconv.ParseUint(u.Uid, 10, 32)
		if err != nil {
			return nil, nil, &Error{File: c.name, Line: c.lines["plugin_users"], Key: "plugin_users",
				Msg: fmt.Sprintf("user %s: uid %q", name, u.Uid)}
		}
		uids = append(uids, uint32(id))
	}
	return uids, skipped, nil
}

func setPluginUsers(c *Config, v string) error {
	c.PluginUsers = nil
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if strings.ContainsAny(f, ":/") {
			return fmt.Errorf("bad user name %q", f)
		}
		c.PluginUsers = append(c.PluginUsers, f)
	}
	return nil // empty: root only
}

func setMetricsListen(c *Config, v string) error {
	if v == "" || strings.EqualFold(v, "off") {
		c.MetricsListen = ""
		return nil
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("bad value %q (want host:port, or off)", v)
	}
	c.MetricsListen = v
	return nil
}

func positiveSeconds(field func(*Config) *time.Duration) setter {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > 100*365*86400 {
			return fmt.Errorf("bad value %q (want seconds, at least 1)", v)
		}
		*field(c) = time.Duration(n) * time.Second
		return nil
	}
}

func setTargets(c *Config, v string) error {
	seen := map[string]bool{}
	for _, part := range strings.Split(v, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		fields := strings.Split(part, ":")
		t := Target{Path: fields[0]}
		// A ':' in a path is kept: only trailing name=value fields are options.
		opts := fields[1:]
		for len(opts) > 0 && !strings.Contains(opts[0], "=") {
			t.Path += ":" + opts[0]
			opts = opts[1:]
		}
		for _, o := range opts {
			k, val, _ := strings.Cut(o, "=")
			switch k {
			case "bwlimit":
				r, err := ParseSize(val)
				if err != nil || r == 0 {
					return fmt.Errorf("target %s: bad bwlimit %q (bytes per second, with K, M or G)", t.Path, val)
				}
				t.BWLimit = r
			default:
				return fmt.Errorf("target %s: unknown option %q", t.Path, k)
			}
		}
		if err := absPath(&t.Path, t.Path); err != nil {
			return fmt.Errorf("target %q: %v", t.Path, err)
		}
		if seen[t.Path] {
			return fmt.Errorf("target %s listed twice", t.Path)
		}
		seen[t.Path] = true
		c.Targets = append(c.Targets, t)
	}
	if len(c.Targets) == 0 {
		return errors.New("no target")
	}
	return nil
}

// setGroups reads name:path,path;name:path (consistency_groups).
func setGroups(c *Config, v string) error {
	names := map[string]bool{}
	owner := map[string]string{}
	for _, part := range strings.Split(v, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, paths, ok := strings.Cut(part, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " /,") {
			return fmt.Errorf("%q: want name:/path[,/path...]", part)
		}
		if names[name] {
			return fmt.Errorf("group %s defined twice", name)
		}
		names[name] = true
		g := Group{Name: name}
		for _, p := range strings.Split(paths, ",") {
			p = strings.TrimSpace(p)
			var abs string
			if err := absPath(&abs, p); err != nil || abs == "/" {
				return fmt.Errorf("group %s: %q is not an absolute path below /", name, p)
			}
			for q, other := range owner {
				if abs == q || strings.HasPrefix(abs, q+"/") || strings.HasPrefix(q, abs+"/") {
					return fmt.Errorf("group %s: %s overlaps %s of group %s", name, abs, q, other)
				}
			}
			owner[abs] = name
			g.Paths = append(g.Paths, abs)
		}
		c.Groups = append(c.Groups, g)
	}
	if len(c.Groups) == 0 {
		return errors.New("no group")
	}
	return nil
}

// ParseSize reads a byte count with an optional K, M or G suffix (powers
// of 1024, case ignored, an optional trailing B).
func ParseSize(v string) (int64, error) {
	s := strings.ToUpper(strings.TrimSpace(v))
	s = strings.TrimSuffix(s, "B")
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, s[:len(s)-1]
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q", v)
	}
	return n * mult, nil
}

func boolean(field func(*Config) *bool) setter {
	return func(c *Config, v string) error {
		switch strings.ToLower(v) {
		case "yes", "true", "on", "1":
			*field(c) = true
		case "no", "false", "off", "0":
			*field(c) = false
		default:
			return fmt.Errorf("bad value %q (want yes or no)", v)
		}
		return nil
	}
}

func integer(field func(*Config) *int, lo, hi int) setter {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("bad value %q (want an integer from %d to %d)", v, lo, hi)
		}
		*field(c) = n
		return nil
	}
}

func size(field func(*Config) *int64) setter {
	return func(c *Config, v string) error {
		n, err := ParseSize(v)
		if err != nil || n == 0 {
			return fmt.Errorf("bad value %q (want a size such as 64M)", v)
		}
		*field(c) = n
		return nil
	}
}

func seconds(field func(*Config) *time.Duration) setter {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > 100*365*86400 {
			return fmt.Errorf("bad value %q (want seconds)", v)
		}
		*field(c) = time.Duration(n) * time.Second
		return nil
	}
}

func str(field func(*Config) *string) setter {
	return func(c *Config, v string) error {
		if v == "" {
			return errors.New("empty value")
		}
		*field(c) = v
		return nil
	}
}

func absPath(dst *string, v string) error {
	if !strings.HasPrefix(v, "/") {
		return fmt.Errorf("%q is not an absolute path", v)
	}
	*dst = v
	if len(v) > 1 {
		*dst = strings.TrimRight(v, "/")
	}
	return nil
}

func oneOf(dst *string, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			*dst = v
			return nil
		}
	}
	return fmt.Errorf("bad value %q (want one of %s)", v, strings.Join(allowed, ", "))
}
