package report

import "time"

// SchemaVersion names the layout of Report as WriteJSON writes it. It
// changes when a field is removed or changes meaning; fields may be added
// within a version, so readers must ignore fields they do not know.
const SchemaVersion = "openbrc.report/v1"

// Verdict is the outcome of an SLA check.
type Verdict string

// Verdicts. Unknown is never folded into pass: a target whose restore time
// cannot be estimated has not shown that it meets its RTO.
const (
	Pass    Verdict = "pass"
	Fail    Verdict = "fail"
	Unknown Verdict = "unknown"
)

// combine is the verdict of several checks that must all pass: any fail
// fails, else any unknown is unknown. No checks at all is unknown, as
// nothing was shown.
func combine(vs ...Verdict) Verdict {
	if len(vs) == 0 {
		return Unknown
	}
	out := Pass
	for _, v := range vs {
		switch {
		case v == Fail:
			return Fail
		case v != Pass:
			out = Unknown
		}
	}
	return out
}

// Params are the SLA targets and limits of a report. Start from
// DefaultParams and override what the configuration sets; the zero value
// is invalid rather than silently defaulted, so that a configured 0 (no
// overhead, list nothing) means 0.
//
// Durations are used at whole-second resolution (truncated), the
// resolution of every age and estimate in the report.
type Params struct {
	// SLARPO is the recovery point objective: the most a file's target
	// copy may lag behind. Config key sla_rpo_secs. Must be at least 1 s.
	SLARPO time.Duration
	// SLARTO is the recovery time objective: the most a full restore from
	// the target may take. Config key sla_rto_secs. Must be at least 1 s.
	SLARTO time.Duration
	// RTOOverhead is added to every RTO estimate for what precedes the
	// copy: mounting, checking, switching over. Config key
	// rto_overhead_secs. Not negative.
	RTOOverhead time.Duration
	// MaxListed caps the files listed as RPO breaches (all are counted).
	// Not negative; 0 lists none.
	MaxListed int
}

// Defaults of DefaultParams.
const (
	DefaultSLARPO      = 14400 * time.Second // 4 h
	DefaultSLARTO      = 3600 * time.Second  // 1 h
	DefaultRTOOverhead = 300 * time.Second   // 5 min to mount and check
	DefaultMaxListed   = 100
)

// DefaultParams returns the defaults: RPO 4 h, RTO 1 h, RTO overhead
// 5 min, 100 breaches listed.
func DefaultParams() Params {
	return Params{
		SLARPO:      DefaultSLARPO,
		SLARTO:      DefaultSLARTO,
		RTOOverhead: DefaultRTOOverhead,
		MaxListed:   DefaultMaxListed,
	}
}

// Report is a computed RPO/RTO compliance report. It is plain data: the
// JSON layout (schema SchemaVersion, described in the package comment) is
// given by its field tags. For a Report from Compute, json.Unmarshal of
// WriteJSON's output gives back an equal Report (as long as its strings
// are valid UTF-8, which JSON requires). Its slices are never nil, so that
// JSON has [] and not null for "none".
type Report struct {
	Schema      string    `json:"schema"`       // SchemaVersion
	GeneratedAt time.Time `json:"generated_at"` // the now given to Compute, in UTC
	SLA         SLA       `json:"sla"`
	Verdict     Verdict   `json:"verdict"`     // overall: every target, RPO and RTO
	RPOVerdict  Verdict   `json:"rpo_verdict"` // every target's RPO
	RTOVerdict  Verdict   `json:"rto_verdict"` // every target's RTO
	Totals      Totals    `json:"totals"`
	Targets     []Target  `json:"targets"` // in name order
	// RPOBreaches are the files over the RPO, across all targets.
	RPOBreaches RPOBreaches `json:"rpo_breaches"`
	// RTOBreaches names the targets whose RTO estimate exceeds the RTO, in
	// name order. Targets with an unknown estimate are not in it.
	RTOBreaches []string `json:"rto_breaches"`
	// Attention lists the targets whose state is not ok, in name order.
	Attention []Attention `json:"attention"`
}

// SLA is the Params a report was computed with, in seconds, under the
// configuration keys.
type SLA struct {
	RPOSecs         int64 `json:"sla_rpo_secs"`
	RTOSecs         int64 `json:"sla_rto_secs"`
	RTOOverheadSecs int64 `json:"rto_overhead_secs"`
	MaxListed       int   `json:"max_listed"`
}

// Totals add up all targets.
type Totals struct {
	Targets int   `json:"targets"`
	Files   int64 `json:"files"`
	Bytes   int64 `json:"bytes"`
	// RPOMaxSecs is the oldest file age over all targets; nil when no
	// target has a replicated file. (No overall p95 or median: they would
	// need every age of every target in memory at once.)
	RPOMaxSecs      *int64    `json:"rpo_max_secs"`
	RPOBreaches     int64     `json:"rpo_breaches"`     // files over the RPO, never replicated included
	NeverReplicated int64     `json:"never_replicated"` // files without a replication time
	FutureFiles     int64     `json:"future_files"`     // files replicated "after" now: clock skew
	TargetsPass     int       `json:"targets_pass"`
	TargetsFail     int       `json:"targets_fail"`
	TargetsUnknown  int       `json:"targets_unknown"`
	Jobs            JobTotals `json:"jobs"`
}

// Target is the report on one target.
type Target struct {
	Name        string     `json:"name"`
	Root        string     `json:"root"`
	State       State      `json:"state"`
	LastError   string     `json:"last_error"`   // "" if none
	LastSuccess *time.Time `json:"last_success"` // UTC; nil if never
	PendingJobs int        `json:"pending_jobs"`
	// BandwidthBps is the measured destination bandwidth in bytes per
	// second; 0 is unknown.
	BandwidthBps int64 `json:"bandwidth_bytes_per_sec"`
	Files        int64 `json:"files"` // all files, never replicated included
	Bytes        int64 `json:"bytes"` // sum of their sizes: the dataset a restore reads
	// RPO are the ages of the files with a replication time; nil when
	// there are none.
	RPO             *RPOStats `json:"rpo"`
	RPOBreaches     int64     `json:"rpo_breaches"`     // files over the RPO, never replicated included
	NeverReplicated int64     `json:"never_replicated"` // files without a replication time
	// FutureFiles counts files whose replication time is after now (clock
	// skew between catalog writer and reporter); their age is taken as 0.
	FutureFiles int64 `json:"future_files"`
	// RTOEstimateSecs is Bytes / BandwidthBps, rounded up, plus the
	// overhead; nil when the bandwidth is unknown.
	RTOEstimateSecs *int64  `json:"rto_estimate_secs"`
	RPOVerdict      Verdict `json:"rpo_verdict"`
	RTOVerdict      Verdict `json:"rto_verdict"`
	Verdict         Verdict `json:"verdict"` // RPO and RTO together
	// LastJob is the job that started last (the higher JobId on a tie);
	// nil if the target has no job.
	LastJob *Job      `json:"last_job"`
	Jobs    JobTotals `json:"jobs"`
}

// RPOStats describe the observed RPO, now minus the last successful
// replication, of a target's files, in whole seconds.
//
// Quantiles are exact and nearest-rank: the q quantile of n ages is the
// ceil(q·n)-th smallest. It is always an age some file has, and reads as
// "a fraction q of the files are at most this old", which is what an SLA
// states. The median of an even count is therefore the lower middle value,
// not the mean of the two.
type RPOStats struct {
	Samples    int64 `json:"samples"` // files with a replication time
	MaxSecs    int64 `json:"max_secs"`
	P95Secs    int64 `json:"p95_secs"`
	MedianSecs int64 `json:"median_secs"`
}

// Job summarizes one replication job.
type Job struct {
	JobID   uint32     `json:"job_id"`
	Name    string     `json:"name"`
	Level   string     `json:"level"`
	Status  string     `json:"status"`
	Start   *time.Time `json:"start"` // UTC; nil if unknown
	End     *time.Time `json:"end"`   // UTC; nil while running
	Bytes   int64      `json:"bytes"`
	Files   int64      `json:"files"`
	Skipped int64      `json:"skipped"`
	Errors  int64      `json:"errors"`
}

// JobTotals add up jobs.
type JobTotals struct {
	Jobs    int64 `json:"jobs"`
	Bytes   int64 `json:"bytes"`
	Files   int64 `json:"files"`
	Skipped int64 `json:"skipped"`
	Errors  int64 `json:"errors"`
	// ByStatus counts jobs per Status, as the catalog spells it; the
	// report does not judge which statuses are good.
	ByStatus map[string]int64 `json:"by_status"`
}

// RPOBreaches are the files over the RPO.
type RPOBreaches struct {
	Files int64 `json:"files"` // all of them, listed or not
	// Worst lists at most SLA.MaxListed of them, worst first: never
	// replicated ones, then by age, oldest first; ties by path, then target
	// name, so that the list does not depend on catalog order.
	Worst []FileBreach `json:"worst"`
}

// FileBreach is one file over the RPO.
type FileBreach struct {
	Target string `json:"target"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	// AgeSecs is now minus Replicated in whole seconds; nil if the file was
	// never replicated.
	AgeSecs    *int64     `json:"age_secs"`
	Replicated *time.Time `json:"replicated_at"` // UTC; nil if never
	JobID      uint32     `json:"job_id"`
}

// Attention is a target whose state is not ok.
type Attention struct {
	Name        string     `json:"name"`
	State       State      `json:"state"`
	LastError   string     `json:"last_error"`
	LastSuccess *time.Time `json:"last_success"` // UTC; nil if never
	PendingJobs int        `json:"pending_jobs"`
}
