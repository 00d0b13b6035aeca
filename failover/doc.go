// Package failover automates the promotion of the disaster-recovery site
// when the primary fails, and the failback when it recovers: a Controller
// runs a health check of the primary on a fixed interval and runs the
// promote and demote hooks the operator configured. "replicad run" starts
// one with Run and asks it for the Role.
//
// # Configuration
//
// The configuration keys, mapped to Config by the daemon's configuration
// parser (durations in seconds):
//
//	healthcheck_cmd         command that checks the primary; exit 0 = healthy.
//	                        Empty (the default) disables failover.
//	healthcheck_interval    seconds between checks (30)
//	healthcheck_timeout     seconds before a check is stopped and counts as
//	                        failed (10); less than healthcheck_interval
//	healthcheck_failures    consecutive failed checks before promotion (3)
//	healthcheck_recoveries  consecutive passed checks before failback (3)
//	failback_hold           seconds after the promotion before a failback may
//	                        run (600), counted across daemon restarts
//	promote_cmd             hook run to promote this site (empty: the role
//	                        changes without running anything)
//	demote_cmd              hook run on failback (empty: likewise)
//	hook_timeout            seconds before a hook is stopped and counts as
//	                        failed (300)
//	hook_retries            retries of a failed hook (3), so at most 4 runs
//	hook_backoff            seconds before the first retry (10); doubled for
//	                        each further retry
//	hook_backoff_max        cap of the retry wait (300)
//
// promote_cmd or demote_cmd without healthcheck_cmd is refused by
// Config.Validate.
//
// Every command is a shell command line, run as
//
//	/bin/sh -c '<command line>'
//
// through internal/run, so it may use pipes, redirections and variables.
// A command that times out gets SIGTERM, then SIGKILL 5 seconds later.
// Its standard output and error go to the log.
//
// # Hook environment
//
// Hooks get the daemon's environment plus:
//
//	BRC_EVENT       promote or demote
//	BRC_ROLE        the role now: standby for promote, promoted for demote
//	BRC_NEW_ROLE    the role once the hook succeeds
//	BRC_TARGET      the configured replication targets, one per line
//	BRC_LAST_JOBID  the id of the last replicated job (may be empty)
//	BRC_FAILURES    the number of consecutive failed checks
//	BRC_ATTEMPT     1 for the first attempt, 2 for the first retry...
//
// The health check gets BRC_ROLE.
//
// Hooks must be idempotent: a hook stopped by a timeout, by the daemon's
// shutdown or by a crash runs again (after a retry wait, or after a
// restart once the checks again ask for it).
//
// # Decisions
//
// Decide holds the whole policy as a pure function of the state, an event
// and the time; Controller only runs commands and timers around it:
//
//	standby  --healthcheck_failures failed checks in a row-->  run promote_cmd
//	         promote_cmd succeeds --> promoted (time recorded)
//	promoted --healthcheck_recoveries passed checks in a row,
//	           failback_hold elapsed-->                        run demote_cmd
//	         demote_cmd succeeds --> standby
//
// A result resets the counter of the opposite result, so a primary that
// alternates between passing and failing never reaches either threshold.
// Checks go on while hooks run, and never overlap each other. The hold is
// checked on each passed check, so the failback happens at the first check
// after failback_hold, not at once.
//
// A hook that fails or times out is reported (NoticeHookFailed, and the
// log) and retried after hook_backoff, 2*hook_backoff... up to
// hook_retries times; only one hook runs at a time and never twice at
// once. After the last retry the controller gives up (NoticeHookGaveUp):
// the hook is not tried again until a check with the opposite result
// (for promote: a passed check) shows the situation changed, or the
// daemon restarts. An operator should look at it.
//
// If the primary recovers (healthcheck_recoveries passed checks in a row)
// while a promotion is still being retried, the pending promotion is
// abandoned (NoticeHookAbandoned): the role stays standby, and no demotion
// runs, since nothing was promoted. Likewise a failback still being
// retried is abandoned when the primary fails healthcheck_failures times
// in a row again; the site stays promoted. An attempt already running is
// not killed for this: if it succeeds its role stands, and the usual rules
// go on from there (a promotion that succeeds after the primary came back
// is failed back after failback_hold).
//
// # State file
//
// The role survives restarts in StateFileName (failover.json) in the state
// directory the daemon gives, a small JSON document:
//
//	{"version": 1, "role": "promoted", "promoted_at": "...", "changed_at": "..."}
//
// written atomically (temporary file in the same directory, fsync, rename,
// fsync of the directory) each time the role changes. A missing file means
// standby. A file that cannot be read back makes New fail with
// ErrCorruptState naming the file: it is never replaced by a guess; fix
// or remove it. promoted_at makes failback_hold count across restarts.
// The check counters, a pending hook and its retries are not persisted: a
// restarted daemon observes the primary afresh, healthcheck_failures or
// healthcheck_recoveries checks, before acting. To give up failover while
// promoted, demote by hand and remove the file. One daemon only may use a
// state directory; nothing locks it.
//
// # What replication should do
//
// Role and Subscribe (NoticeRoleChanged) tell the daemon the role; it acts
// on it as follows:
//
//   - RoleStandby: the primary is live. Replicate into the targets as
//     usual, including while a promotion is pending or being retried:
//     until promote_cmd succeeds the disaster-recovery copy is not live.
//     (A daemon whose promote hook needs quiet targets can hold back new
//     volumes while State().Pending is HookPromote.)
//   - RolePromoted: the disaster-recovery copy is now the live primary and
//     is being changed by its users. Pause replication into it, so data
//     replicated from backups of the failed primary never overwrites live
//     changes. Volumes that arrive meanwhile stay queued (or are skipped,
//     by policy); they are not applied.
//   - After demote_cmd succeeds (back to RoleStandby), resume
//     replication. Bringing the live changes back to the primary is the
//     job of the demote hook and of the operator, not of replication.
//
// Notices (every check, hook start, success, failure, retry, abandon and
// give-up, role change, and state-file error) are meant for metrics and
// alerts.
package failover
