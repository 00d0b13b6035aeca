package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/openbrc/brc/internal/config"
)

// StatusVersion names the schema of the /status document.
const StatusVersion = "openbrc.status/v1"

// statusDoc is what GET /status returns and "replicad status" prints.
type statusDoc struct {
	Version         string          `json:"version"`
	PID             int             `json:"pid"`
	Started         time.Time       `json:"started"`
	Config          string          `json:"config"`
	Source          string          `json:"source"`
	State           string          `json:"state"` // starting, waiting, replicating, catching_up, paused, stopping
	Role            string          `json:"role"`  // standby or promoted
	FailoverEnabled bool            `json:"failover_enabled"`
	Paused          bool            `json:"paused"`
	Pass            passStatus      `json:"pass"`
	JobsInFlight    []inflightJob   `json:"jobs_in_flight"`
	Targets         []*targetStatus `json:"targets"`
	LastReload      *reloadStatus   `json:"last_reload,omitempty"`
}

// passStatus is the pass in progress (Started set) and the last one.
type passStatus struct {
	Number      int        `json:"number"` // passes started since the daemon started
	Started     *time.Time `json:"started,omitempty"`
	LastEnded   *time.Time `json:"last_ended,omitempty"`
	LastResult  string     `json:"last_result,omitempty"` // committed, incomplete, error
	LastSeconds float64    `json:"last_seconds,omitempty"`
	LastJobs    int        `json:"last_jobs"`
	LastFiles   int64      `json:"last_files"`
	LastBytes   int64      `json:"last_bytes"`
}

// inflightJob is a job the plugin reported started and not ended.
type inflightJob struct {
	JobID uint32    `json:"job_id"`
	Job   string    `json:"job,omitempty"`
	Since time.Time `json:"since"`
}

// targetStatus is one target: its lag and its last error.
type targetStatus struct {
	Name       string `json:"name"`
	Job        string `json:"job,omitempty"` // the job it is receiving
	LagBytes   int64  `json:"lag_bytes"`     // read for it, not yet written: queue + spool
	QueueBytes int64  `json:"queue_bytes"`
	SpoolBytes int64  `json:"spool_bytes"`
	// JobsBehind are the jobs it misses and waits for: missed after a
	// pass's retries, or held back meanwhile; caught up from the volumes
	// (CatchUp). With a source that does not locate jobs (tests), the
	// jobs it missed in the last pass.
	JobsBehind  int            `json:"jobs_behind"`
	CatchUp     *catchUpStatus `json:"catch_up,omitempty"`  // set while behind
	LostJobs    []lostJob      `json:"lost_jobs,omitempty"` // jobs it misses for good: no volume holds them any more
	LastJob     string         `json:"last_job,omitempty"`
	LastJobDone *time.Time     `json:"last_job_done,omitempty"`
	RPOSeconds  *float64       `json:"rpo_seconds,omitempty"` // since LastJobDone
	Files       int64          `json:"files"`                 // replicated since the daemon started
	Bytes       int64          `json:"bytes"`
	Failed      int64          `json:"failed"`
	LastError   string         `json:"last_error,omitempty"`
	LastErrorAt *time.Time     `json:"last_error_at,omitempty"`
}

type reloadStatus struct {
	Time    time.Time `json:"time"`
	Error   string    `json:"error,omitempty"`   // the configuration was refused
	Ignored []string  `json:"ignored,omitempty"` // keys changed that need a restart
}

func (d *daemon) status() *statusDoc {
	role := d.role()
	e := d.currentEngine()
	qs := e.Queues()
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &statusDoc{
		Version: StatusVersion, PID: os.Getpid(), Started: d.start, Config: d.opt.conf,
		Source: sourceName(d.cfg), State: d.state, Role: string(role), FailoverEnabled: d.fo != nil,
		Paused: d.paused, Pass: d.pass, JobsInFlight: []inflightJob{}, LastReload: d.reloaded,
	}
	for _, j := range d.inflight {
		s.JobsInFlight = append(s.JobsInFlight, j)
	}
	sort.Slice(s.JobsInFlight, func(i, j int) bool { return s.JobsInFlight[i].JobID < s.JobsInFlight[j].JobID })
	for _, t := range d.cfg.Targets {
		ts := d.targets[t.Path]
		if ts == nil {
			continue
		}
		c := *ts
		c.QueueBytes, c.SpoolBytes = 0, 0
		for _, q := range qs {
			if q.Name == c.Name {
				c.QueueBytes, c.SpoolBytes = q.MemBytes, q.SpoolBytes
			}
		}
		c.LagBytes = c.QueueBytes + c.SpoolBytes
		if c.LastJobDone != nil {
			rpo := now.Sub(*c.LastJobDone).Seconds()
			c.RPOSeconds = &rpo
		}
		d.fillCatchUp(&c)
		s.Targets = append(s.Targets, &c)
	}
	return s
}

func (d *daemon) serveStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(d.status())
}

// cmdStatus prints the status of the running daemon, asked on its
// metrics_listen address.
func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, conf := configFlags("status", stderr)
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the daemon's answer")
	if err := parseNoArgs(fs, "usage: replicad status [-c FILE] [-timeout DURATION]", args); err != nil {
		return err
	}
	cfg, err := config.Load(*conf)
	if err != nil {
		return err
	}
	if cfg.MetricsListen == "" {
		return errors.New("metrics_listen is off: the daemon serves no status")
	}
	url := "http://" + dialAddr(cfg.MetricsListen) + "/status"
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("is replicad run running? %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	var b bytes.Buffer
	if err := json.Indent(&b, body, "", "  "); err != nil {
		return fmt.Errorf("%s: not JSON: %w", url, err)
	}
	b.WriteByte('\n')
	_, err = stdout.Write(bytes.TrimRight(b.Bytes(), "\n"))
	fmt.Fprintln(stdout)
	return err
}

// dialAddr turns a listen address into one to connect to: a wildcard host
// becomes loopback.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}
