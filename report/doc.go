// Package report computes RPO/RTO compliance reports from the replication
// catalog and renders them as JSON, for programs, and Markdown, for
// auditors.
//
// A report answers two questions per replication target and overall:
//
//   - RPO (recovery point objective): is every file's copy on the target
//     recent enough? The observed RPO of a file is the report time minus
//     its last successful replication; per target the report gives the
//     maximum, 95th percentile and median (exact), counts the files over
//     the SLA and lists the worst of them.
//   - RTO (recovery time objective): could the target's dataset be read
//     back in time? The estimate is the dataset size over the measured
//     destination bandwidth plus a fixed overhead; without a measured
//     bandwidth it is unknown, and so is the verdict.
//
// Verdicts are pass, fail or unknown. Unknown is never counted as pass:
// a report that cannot show compliance does not claim it. Targets whose
// state is not ok (failed, lagging) are listed with their last error
// whatever their verdict, since a freshly failed target still meets its
// RPO for a while and would otherwise go unnoticed.
//
// # Use
//
// Compute reads a Source (the catalog, or a MemSource) as of a given time
// and returns a Report, a plain struct; WriteJSON and WriteMarkdown render
// it. Compute is a pure function of the source's data, the time and the
// Params, so a report can be reproduced. It streams the files of each
// target and keeps one int64 per file of the largest target, not the
// records: a million files cost about 8 MB.
//
// # JSON schema openbrc.report/v1
//
// WriteJSON writes one object. Names are snake_case; durations and ages
// are whole seconds as JSON numbers (fields ending in _secs); sizes are
// bytes; times are RFC 3339 strings in UTC; a time that never happened
// and a quantity that is unknown are null, never 0 or "0001-01-01". Lists
// are [] when empty, never null. Strings are UTF-8: bytes of a path that
// are not valid UTF-8 come out as U+FFFD. Within v1 fields may be added,
// so readers must ignore unknown fields; removing or changing the meaning
// of a field makes a new version.
//
//	{
//	  "schema": "openbrc.report/v1",
//	  "generated_at": time,                 // the report time ("now")
//	  "sla": {"sla_rpo_secs": n, "sla_rto_secs": n,
//	          "rto_overhead_secs": n, "max_listed": n},
//	  "verdict": v, "rpo_verdict": v, "rto_verdict": v,   // "pass" | "fail" | "unknown"
//	  "totals": {
//	    "targets": n, "files": n, "bytes": n,
//	    "rpo_max_secs": n | null,           // oldest file over all targets
//	    "rpo_breaches": n,                  // files over the RPO, never replicated included
//	    "never_replicated": n,              // files with no replication time
//	    "future_files": n,                  // replication time after generated_at (clock skew)
//	    "targets_pass": n, "targets_fail": n, "targets_unknown": n,
//	    "jobs": jobs
//	  },
//	  "targets": [{                         // in name order
//	    "name": s, "root": s,
//	    "state": "ok" | "failed" | "lagging" | s,
//	    "last_error": s,                    // "" if none
//	    "last_success": time | null,
//	    "pending_jobs": n,
//	    "bandwidth_bytes_per_sec": n,       // 0: unknown
//	    "files": n, "bytes": n,
//	    "rpo": {"samples": n, "max_secs": n, "p95_secs": n, "median_secs": n} | null,
//	    "rpo_breaches": n, "never_replicated": n, "future_files": n,
//	    "rto_estimate_secs": n | null,      // null: bandwidth unknown
//	    "rpo_verdict": v, "rto_verdict": v, "verdict": v,
//	    "last_job": {"job_id": n, "name": s, "level": s, "status": s,
//	                 "start": time | null, "end": time | null,    // end null: running
//	                 "bytes": n, "files": n, "skipped": n, "errors": n} | null,
//	    "jobs": jobs
//	  }],
//	  "rpo_breaches": {
//	    "files": n,                         // all files over the RPO
//	    "worst": [{"target": s, "path": s, "size": n,
//	               "age_secs": n | null,    // null: never replicated
//	               "replicated_at": time | null, "job_id": n}]
//	  },
//	  "rto_breaches": [s],                  // names of targets over the RTO
//	  "attention": [{"name": s, "state": s, "last_error": s,
//	                 "last_success": time | null, "pending_jobs": n}]
//	}
//
// where jobs is {"jobs": n, "bytes": n, "files": n, "skipped": n,
// "errors": n, "by_status": {status: n}}, statuses spelled as the catalog
// has them.
//
// Rules the numbers follow:
//
//   - Ages are truncated to whole seconds; a file breaches the RPO when its
//     age is greater than sla_rpo_secs (meeting it exactly passes). A file
//     never replicated always breaches and has no age; it is counted in
//     files but not in the rpo quantiles ("samples" is the count those
//     cover).
//   - A replication time after generated_at counts in future_files and
//     gives age 0.
//   - Quantiles are nearest-rank: p95_secs is the ceil(0.95·n)-th smallest
//     age, median_secs the ceil(n/2)-th (the lower middle for even n).
//   - rto_estimate_secs is ceil(bytes / bandwidth) + rto_overhead_secs; it
//     fails when greater than sla_rto_secs.
//   - A target's verdict fails if its RPO or RTO fails, else is unknown if
//     either is unknown, else passes. The overall verdicts combine the
//     targets the same way; with no targets they are unknown.
//   - worst is sorted never replicated first, then by age descending, then
//     path and target ascending, and holds at most max_listed entries.
//   - The last job is the one that started last, the higher job_id on a
//     tie.
package report
