package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	c, err := Parse(strings.NewReader(`
# DR targets
targets = /mnt/a;/mnt/b:bwlimit=1M; /mnt/c:bwlimit=500K
mode=mirror
skip_unchanged = yes
verify_after = no
delete_removed = yes
snapshot_backend = btrfs
state_dir = /var/lib/brc/
retry_backoff = 30
queue_size = 64m
consistency_groups = db:/var/lib/pgsql,/var/log/pgsql/; etc:/etc/app
`), "test.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Groups) != 2 || c.Groups[0].Name != "db" || len(c.Groups[0].Paths) != 2 ||
		c.Groups[0].Paths[1] != "/var/log/pgsql" || c.Groups[1].Paths[0] != "/etc/app" {
		t.Errorf("groups %+v", c.Groups)
	}
	want := []Target{{"/mnt/a", 0}, {"/mnt/b", 1 << 20}, {"/mnt/c", 500 << 10}}
	if len(c.Targets) != 3 || c.Targets[0] != want[0] || c.Targets[1] != want[1] || c.Targets[2] != want[2] {
		t.Errorf("targets %+v", c.Targets)
	}
	if !c.SkipUnchanged || c.VerifyAfter || !c.DeleteRemoved || c.StateDir != "/var/lib/brc" ||
		c.RetryBackoff != 30*time.Second || c.QueueSize != 64<<20 || c.SLARPO != 4*time.Hour {
		t.Errorf("config %+v", c)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"targets=/a\nbogus=1", "config: f:2: bogus: unknown key"},
		{"targets=/a\nskip_unchanged=maybe", `config: f:2: skip_unchanged: bad value "maybe" (want yes or no)`},
		{"targets=a/b", `config: f:1: targets: target "a/b": "a/b" is not an absolute path`},
		{"targets=/a:bwlimit=fast", `config: f:1: targets: target /a: bad bwlimit "fast" (bytes per second, with K, M or G)`},
		{"targets=/a:speed=1", `config: f:1: targets: target /a: unknown option "speed"`},
		{"targets=/a;/a", "config: f:1: targets: target /a listed twice"},
		{"targets=/a\ntargets=/b", "config: f:2: targets: already set on line 1"},
		{"targets=/a\nmode=mirrors", `config: f:2: mode: bad value "mirrors" (want one of mirror, retention)`},
		{"targets=/a\n\ndelete_removed=yes", "config: f:3: delete_removed: refused without a snapshot_backend to roll back to (set delete_removed_unsafe = yes to accept the risk)"},
		{"targets=/a\njust words", `config: f:2: "just words" is not key=value`},
		{"targets=/a\nconsistency_groups=db:/x;etc:/x/y", "config: f:2: consistency_groups: group etc: /x/y overlaps /x of group db"},
		{"targets=/a\nconsistency_groups=/x", `config: f:2: consistency_groups: "/x": want name:/path[,/path...]`},
		{"targets=/a\nconsistency_groups=db:x", `config: f:2: consistency_groups: group db: "x" is not an absolute path below /`},
	} {
		_, err := Parse(strings.NewReader(tc.in), "f")
		var ce *Error
		if err == nil || err.Error() != tc.want || !errors.As(err, &ce) {
			t.Errorf("%q:\n got %v\nwant %s", tc.in, err, tc.want)
		}
	}
	if _, err := Parse(strings.NewReader("# nothing"), "f"); !errors.Is(err, ErrNoTargets) {
		t.Errorf("no targets: %v", err)
	}
	if c, err := Parse(strings.NewReader("targets=/a\ndelete_removed=yes\ndelete_removed_unsafe=yes"), "f"); err != nil || !c.DeleteRemoved {
		t.Errorf("unsafe override: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "1K": 1024, "500k": 512000, "1M": 1 << 20, "2G": 2 << 30, "10MB": 10 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, in := range []string{"", "-1", "1T", "x", "1.5M"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestDaemonKeys(t *testing.T) {
	c, err := Parse(strings.NewReader("targets=/a\n"), "f")
	if err != nil {
		t.Fatal(err)
	}
	if c.PluginSocket != "/run/openbrc/replicad.sock" || len(c.PluginUsers) != 1 || c.PluginUsers[0] != "bacula" ||
		c.MetricsListen != "127.0.0.1:9465" || c.LogLevel != "info" || c.Idle != 5*time.Second ||
		c.Failover.Enabled() || c.Failover.HealthcheckInterval != 30*time.Second || c.Failover.HookRetries != 3 {
		t.Errorf("defaults %+v", c)
	}
	if err := c.CheckRun(); err == nil || !strings.Contains(err.Error(), "set volume_dir or fifo_path") {
		t.Errorf("no source: %v", err)
	}
	c, err = Parse(strings.NewReader(`targets=/a
volume_dir = /var/lib/bacula/volumes/
plugin_socket = /run/x.sock
plugin_users = root, daemon
metrics_listen = off
log_level = debug
idle_secs = 2
healthcheck_cmd = curl -fsS http://primary/health
healthcheck_interval = 5
healthcheck_timeout = 2
healthcheck_failures = 1
healthcheck_recoveries = 4
failback_hold = 0
promote_cmd = /etc/brc/promote
demote_cmd = /etc/brc/demote
hook_timeout = 60
hook_retries = 0
hook_backoff = 1
hook_backoff_max = 2
`), "f")
	if err != nil {
		t.Fatal(err)
	}
	f := c.Failover
	if c.VolumeDir != "/var/lib/bacula/volumes" || c.PluginSocket != "/run/x.sock" || strings.Join(c.PluginUsers, "|") != "root|daemon" ||
		c.MetricsListen != "" || c.LogLevel != "debug" || c.Idle != 2*time.Second || c.CheckRun() != nil ||
		f.HealthcheckCmd != "curl -fsS http://primary/health" || f.HealthcheckInterval != 5*time.Second || f.HealthcheckTimeout != 2*time.Second ||
		f.HealthcheckFailures != 1 || f.HealthcheckRecoveries != 4 || f.FailbackHold != 0 || f.PromoteCmd != "/etc/brc/promote" ||
		f.DemoteCmd != "/etc/brc/demote" || f.HookTimeout != time.Minute || f.HookRetries != 0 || f.HookBackoff != time.Second || f.HookBackoffMax != 2*time.Second {
		t.Errorf("parsed %+v", c)
	}
	uids, skipped, err := c.PluginUIDs()
	if err != nil || len(uids) != 2 || uids[0] != 0 || len(skipped) != 0 {
		t.Errorf("uids %v %v %v", uids, skipped, err)
	}
	c, _ = Parse(strings.NewReader("targets=/a\nfifo_path=/run/sd.fifo\nfifo_copy_dir=/srv/copies\nplugin_users=\nmetrics_listen=[::1]:9000"), "f")
	if c == nil || c.CheckRun() != nil || c.FIFOCopyDir != "/srv/copies" || len(c.PluginUsers) != 0 || c.MetricsListen != "[::1]:9000" {
		t.Errorf("fifo %+v", c)
	}
	c, _ = Parse(strings.NewReader("targets=/a\nplugin_users=no-such-user-brc"), "f")
	if _, _, err := c.PluginUIDs(); err == nil || !strings.Contains(err.Error(), "f:2: plugin_users:") || !strings.Contains(err.Error(), "no-such-user-brc") {
		t.Errorf("unknown user: %v", err)
	}
}

func TestDaemonErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"targets=/a\nvolume_dir=spool", `config: f:2: volume_dir: "spool" is not an absolute path`},
		{"targets=/a\nlog_level=trace", `config: f:2: log_level: bad value "trace" (want one of debug, info, warn, error)`},
		{"targets=/a\nidle_secs=0", `config: f:2: idle_secs: bad value "0" (want seconds, at least 1)`},
		{"targets=/a\nmetrics_listen=9465", `config: f:2: metrics_listen: bad value "9465" (want host:port, or off)`},
		{"targets=/a\nplugin_users=a:b", `config: f:2: plugin_users: bad user name "a:b"`},
		{"targets=/a\nhealthcheck_failures=0", `config: f:2: healthcheck_failures: bad value "0" (want an integer from 1 to 1000)`},
		{"targets=/a\n\npromote_cmd=/bin/true", "config: f:3: promote_cmd: failover: invalid configuration: promote_cmd is set but healthcheck_cmd is not"},
		{"targets=/a\nhealthcheck_cmd=true\nhealthcheck_interval=5", "config: f:3: healthcheck_interval: failover: invalid configuration: healthcheck_timeout (10s) must be less than healthcheck_interval (5s)"},
	} {
		_, err := Parse(strings.NewReader(tc.in), "f")
		var ce *Error
		if err == nil || err.Error() != tc.want || !errors.As(err, &ce) {
			t.Errorf("%q:\n got %v\nwant %s", tc.in, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"targets=/a\nvolume_dir=/v\nfifo_path=/f", "config: f:3: volume_dir: set only one of volume_dir, fifo_path"},
		{"targets=/a\nvolume_dir=/v\nfifo_copy_dir=/c", "config: f:3: fifo_copy_dir: needs fifo_path"},
	} {
		c, err := Parse(strings.NewReader(tc.in), "f")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CheckRun(); err == nil || err.Error() != tc.want {
			t.Errorf("%q:\n got %v\nwant %s", tc.in, err, tc.want)
		}
	}
}
