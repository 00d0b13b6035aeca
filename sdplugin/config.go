package sdplugin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// The plugin's configuration file and environment.
const (
	// ConfFile is read at load time when it exists.
	ConfFile = "/etc/openbrc/replica-sd.conf"
	// ConfEnv names another configuration file (tests).
	ConfEnv = "BRC_REPLICA_SD_CONF"
	// SocketEnv gives the socket when the configuration file does not.
	SocketEnv = "BRC_REPLICA_SOCKET"
	// MaxSummaryWait bounds summary_wait.
	MaxSummaryWait = time.Hour
)

// FileConfig is what a configuration file says. Its format: one
// key = value per line; blank lines and lines starting with # are
// ignored, as is " #..." after a value; a value may be in double quotes.
//
//	socket = /run/openbrc/replicad.sock   # replicad's socket
//	require_replica = no                  # yes: a job fails at device open when replicad is unreachable
//	summary_wait = 30                     # seconds JobEnd waits for replicad's summary; 0: no summary
type FileConfig struct {
	Socket         string
	RequireReplica bool
	// SummaryWait is how long JobEnd waits for replicad's summary of the
	// job; SummaryWaitSet tells whether the file set it (0 disables the
	// summary).
	SummaryWait    time.Duration
	SummaryWaitSet bool
}

// ParseConfig reads a configuration file. Problems (unknown keys, bad
// values, lines without "=") do not stop it: each is returned as a
// warning, and the key keeps its default. The error is only a read error.
func ParseConfig(r io.Reader, name string) (FileConfig, []string, error) {
	var c FileConfig
	var warn []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if i := strings.Index(line, "\t#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		key, val, ok := strings.Cut(line, "=")
		key, val = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = val[1 : len(val)-1]
		}
		bad := func(format string, a ...any) {
			warn = append(warn, fmt.Sprintf("%s:%d: %s", name, n, fmt.Sprintf(format, a...)))
		}
		if !ok {
			bad("%q is not key = value: ignored", line)
			continue
		}
		switch key {
		case "socket":
			if val == "" {
				bad("socket is empty: ignored")
				continue
			}
			c.Socket = val
		case "require_replica":
			b, ok := parseBool(val)
			if !ok {
				bad("require_replica = %q: want yes or no; no is used", val)
				continue
			}
			c.RequireReplica = b
		case "summary_wait":
			s, err := strconv.ParseFloat(val, 64)
			if err != nil || s < 0 || math.IsNaN(s) || math.IsInf(s, 0) {
				bad("summary_wait = %q: want seconds (0 or more); %d is used", val, int(DefaultSummaryWait/time.Second))
				continue
			}
			d := time.Duration(s * float64(time.Second))
			if s > MaxSummaryWait.Seconds() {
				bad("summary_wait = %q: more than %d; %d is used", val, int(MaxSummaryWait/time.Second), int(MaxSummaryWait/time.Second))
				d = MaxSummaryWait
			}
			c.SummaryWait, c.SummaryWaitSet = d, true
		default:
			bad("unknown key %q: ignored", key)
		}
	}
	return c, warn, sc.Err()
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "yes", "true", "on", "1":
		return true, true
	case "no", "false", "off", "0":
		return false, true
	}
	return false, false
}

// ResolveConfig returns the configuration of the plugin from the
// configuration file (ConfFile, or the file named by ConfEnv) and the
// environment, and the warnings to show. The socket is, in this order:
// socket= of the file, SocketEnv, DefaultSocket. A missing file is no
// error: the environment and the defaults apply.
func ResolveConfig(getenv func(string) string, readFile func(string) ([]byte, error)) (Config, []string) {
	var c Config
	var warn []string
	path := strings.TrimSpace(getenv(ConfEnv))
	if path == "" {
		path = ConfFile
	}
	var fc FileConfig
	b, err := readFile(path)
	switch {
	case err == nil:
		var w []string
		fc, w, err = ParseConfig(strings.NewReader(string(b)), path)
		warn = append(warn, w...)
		if err != nil {
			warn = append(warn, fmt.Sprintf("%s: %v", path, err))
		}
		c.ConfFile = path
	case errors.Is(err, fs.ErrNotExist):
	default:
		warn = append(warn, fmt.Sprintf("%s: %v (the defaults and %s apply)", path, err, SocketEnv))
	}
	switch {
	case fc.Socket != "":
		c.Socket, c.SocketFrom = fc.Socket, path
	case strings.TrimSpace(getenv(SocketEnv)) != "":
		c.Socket, c.SocketFrom = strings.TrimSpace(getenv(SocketEnv)), SocketEnv
	default:
		c.Socket, c.SocketFrom = DefaultSocket, "default"
	}
	c.RequireReplica = fc.RequireReplica
	if fc.SummaryWaitSet {
		c.SummaryWait = fc.SummaryWait
		if c.SummaryWait == 0 {
			c.SummaryWait = -1 // off
		}
	}
	return c, warn
}

// ConfigFromEnv returns the configuration of the plugin loaded into the
// current process (ResolveConfig with the real file system), its PID and
// the program name.
func ConfigFromEnv(getenv func(string) string) (Config, []string) {
	c, warn := ResolveConfig(getenv, os.ReadFile)
	c.PID = os.Getpid()
	c.Program = programName()
	return c, warn
}
