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
