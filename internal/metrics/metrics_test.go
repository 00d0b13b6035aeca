package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/openbrc/brc/failover"
	"github.com/openbrc/brc/replica"
)

func TestRecorder(t *testing.T) {
	r := New()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	r.SetTargets([]string{"/a", "/b"})
	r.SetQueueSource(func() []replica.QueueStat {
		return []replica.QueueStat{{Name: "/a", MemBytes: 100, SpoolBytes: 20}}
	})
	r.JobStarted("/a")
	now = now.Add(3 * time.Second)
	r.JobFinished("/a", true)
	r.JobStarted("/b")
	r.JobFinished("/b", false)
	r.LastCompleted("/b", now.Add(-time.Hour))
	now = now.Add(7 * time.Second)
	r.Pass(&replica.Summary{Jobs: 1, Files: 54, Bytes: 1000, Targets: []*replica.TargetSummary{
		{Name: "/a", Files: 54, Bytes: 1000, Skipped: 2},
		{Name: "/b", Files: 10, Bytes: 100, Failed: 1, JobsLeft: 1},
	}}, PassIncomplete, 4*time.Second)
	r.SnapshotEvent("/a", SnapshotCreated)
	r.FailoverNotice(failover.Notice{Kind: failover.NoticeCheck, OK: false, Err: errors.New("x")})
	r.FailoverNotice(failover.Notice{Kind: failover.NoticeRoleChanged, Role: failover.RolePromoted})
	r.SetRole(failover.RolePromoted, true)
	r.PluginEvent("job_start", 1)
	r.PluginEvent("weird", 1)
	r.PluginRefused()
	// A catch-up pass: counted with the target, not as a pass.
	r.CatchUp(&replica.Summary{Targets: []*replica.TargetSummary{{Name: "/b", Files: 5, Bytes: 50}}})
	r.LagJobs("/a", 0)
	r.LagJobs("/b", 3)

	for series, v := range map[string]float64{
		`openbrc_replicated_files_total{target="/a"}`:                54,
		`openbrc_replicated_files_total{target="/b"}`:                15,
		`openbrc_replicated_bytes_total{target="/b"}`:                150,
		`openbrc_skipped_files_total{target="/a"}`:                   2,
		`openbrc_failed_files_total{target="/b"}`:                    1,
		`openbrc_lag_jobs{target="/a"}`:                              0,
		`openbrc_lag_jobs{target="/b"}`:                              3,
		`openbrc_queue_bytes{target="/a"}`:                           100,
		`openbrc_queue_bytes{target="/b"}`:                           0,
		`openbrc_spool_bytes{target="/a"}`:                           20,
		`openbrc_lag_bytes{target="/a"}`:                             120,
		`openbrc_rpo_seconds{target="/a"}`:                           7,
		`openbrc_rpo_seconds{target="/b"}`:                           3607,
		`openbrc_jobs_total{result="done",target="/a"}`:              1,
		`openbrc_jobs_total{result="failed",target="/b"}`:            1,
		`openbrc_passes_total{result="incomplete"}`:                  1,
		`openbrc_snapshot_events_total{event="created",target="/a"}`: 1,
		`openbrc_failover_events_total{event="check-failed"}`:        1,
		`openbrc_failover_events_total{event="role-changed"}`:        1,
		`openbrc_failover_role{role="promoted"}`:                     1,
		`openbrc_failover_role{role="standby"}`:                      0,
		`openbrc_replication_paused`:                                 1,
		`openbrc_plugin_events_total{type="other"}`:                  1,
		`openbrc_plugin_refused_total`:                               1,
		`openbrc_jobs_in_flight`:                                     1,
		`openbrc_read_files_total`:                                   54,
		`openbrc_job_duration_seconds_sum{target="/a"}`:              3,
	} {
		if got := value(t, r, series); got != v {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
	// A target removed from the configuration loses its gauges.
	r.SetTargets([]string{"/a"})
	fams, _ := r.Registry().Gather()
	for _, f := range fams {
		if f.GetName() == "openbrc_lag_jobs" && len(f.GetMetric()) != 1 {
			t.Errorf("%d lag_jobs series after removing /b", len(f.GetMetric()))
		}
	}
}

// value reads one series from the registry, in the text format.
func value(t *testing.T, r *Recorder, series string) float64 {
	t.Helper()
	fams, err := r.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			s := f.GetName()
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+`="`+l.GetValue()+`"`)
			}
			if len(ls) > 0 {
				s += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case s == series && m.Counter != nil:
				return m.Counter.GetValue()
			case s == series && m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil && strings.Replace(series, "_sum{", "{", 1) == s:
				return m.Histogram.GetSampleSum()
			}
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}
