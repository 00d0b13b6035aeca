package sdplugin_test

import (
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openbrc/brc/sdplugin"
)

func TestParseConfig(t *testing.T) {
	in := `# openbrc SD plugin
socket = /run/x/replicad.sock   # replicad
require_replica=YES

summary_wait = 12.5
colour = blue
no equals sign
require_replica = maybe
summary_wait = -3
`
	c, warn, err := sdplugin.ParseConfig(strings.NewReader(in), "f.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := sdplugin.FileConfig{Socket: "/run/x/replicad.sock", RequireReplica: true, SummaryWait: 12500 * time.Millisecond, SummaryWaitSet: true}
	if c != want {
		t.Errorf("ParseConfig = %+v, want %+v", c, want)
	}
	wantWarn := []string{
		`f.conf:6: unknown key "colour": ignored`,
		`f.conf:7: "no equals sign" is not key = value: ignored`,
		`f.conf:8: require_replica = "maybe": want yes or no; no is used`,
		`f.conf:9: summary_wait = "-3": want seconds (0 or more); 30 is used`,
	}
	if !slices.Equal(warn, wantWarn) {
		t.Errorf("warnings\n%q\nwant\n%q", warn, wantWarn)
	}
	c, warn, _ = sdplugin.ParseConfig(strings.NewReader("socket=\"/a b.sock\"\nsummary_wait=0\nrequire_replica=no\n"), "g")
	if c.Socket != "/a b.sock" || c.RequireReplica || c.SummaryWait != 0 || !c.SummaryWaitSet || len(warn) != 0 {
		t.Errorf("%+v %q", c, warn)
	}
}

func TestResolveConfig(t *testing.T) {
	files := map[string]string{
		sdplugin.ConfFile: "socket = /from/file.sock\nsummary_wait = 5\n",
		"/tmp/t.conf":     "require_replica = yes\nbogus = 1\n",
		"/tmp/off.conf":   "summary_wait = 0\n",
	}
	read := func(p string) ([]byte, error) {
		if p == "/tmp/denied.conf" {
			return nil, fs.ErrPermission
		}
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, fs.ErrNotExist
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		name     string
		env      map[string]string
		socket   string
		from     string
		require  bool
		wait     time.Duration
		warnings int
	}{
		{"file wins over env", map[string]string{sdplugin.SocketEnv: "/env.sock"}, "/from/file.sock", sdplugin.ConfFile, false, 5 * time.Second, 0},
		{"env when the file has no socket", map[string]string{sdplugin.ConfEnv: "/tmp/t.conf", sdplugin.SocketEnv: " /env.sock\n"}, "/env.sock", sdplugin.SocketEnv, true, 0, 1},
		{"default", map[string]string{sdplugin.ConfEnv: "/tmp/none.conf"}, sdplugin.DefaultSocket, "default", false, 0, 0},
		{"summary off", map[string]string{sdplugin.ConfEnv: "/tmp/off.conf"}, sdplugin.DefaultSocket, "default", false, -1, 0},
		{"unreadable file", map[string]string{sdplugin.ConfEnv: "/tmp/denied.conf", sdplugin.SocketEnv: "/env.sock"}, "/env.sock", sdplugin.SocketEnv, false, 0, 1},
	} {
		c, warn := sdplugin.ResolveConfig(env(tc.env), read)
		if c.Socket != tc.socket || c.SocketFrom != tc.from || c.RequireReplica != tc.require || c.SummaryWait != tc.wait || len(warn) != tc.warnings {
			t.Errorf("%s: %+v %q", tc.name, c, warn)
		}
	}
	_, warn := sdplugin.ResolveConfig(env(map[string]string{sdplugin.ConfEnv: "/tmp/t.conf"}), read)
	if len(warn) != 1 || !strings.Contains(warn[0], `/tmp/t.conf:2: unknown key "bogus"`) {
		t.Errorf("warnings %q", warn)
	}
}

func TestPluginConfigWarnings(t *testing.T) {
	s := &fakeSender{}
	p := sdplugin.New(sdplugin.Config{Send: s.send, SummaryWait: -1, Warnings: []string{`f:1: unknown key "x": ignored`}})
	if _, err := p.Load(12, 56); err != nil {
		t.Fatal(err)
	}
	defer p.Unload()
	h1, h2 := &fakeHost{jobID: 1, job: "J1"}, &fakeHost{jobID: 2, job: "J2"}
	p.HandleEvent(p.NewInstance(), 1, h1)
	p.HandleEvent(p.NewInstance(), 1, h2)
	if m := h1.messages(); len(m) != 2 || h1.types[0] != sdplugin.MWarning || m[0] != "openbrc: configuration: f:1: unknown key \"x\": ignored\n" {
		t.Errorf("first job's messages %q", m)
	}
	if m := h2.messages(); len(m) != 1 {
		t.Errorf("second job's messages %q (warnings only once)", m)
	}
}
