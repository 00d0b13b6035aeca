#!/bin/bash
# bench-latency.sh - the latency benchmark of issue 7: how long after Bacula writes a file's
# last block is the file visible on the replication targets, over a ~1 GiB Full job, with
# `replicad run` in follow mode (volume_dir = the real Bacula 9.6.7 SD's File device
# directory) and two unthrottled targets on the same disk; and how long after the job's end
# both targets are complete. Target: p99 < 1 s.
#
# Method (one lab and one `replicad run` for all rounds; each round is a Full of the same
# tree into fresh targets):
#   1. the source tree is bench-replicate's (bench_tree: BENCH_BIG_N large files, half random
#      and half text, + BENCH_SMALL small files of ~10 kB), backed up by job TreeMD5 (no
#      compression, MD5) into a new volume per job (pool Lab), 64512-byte blocks;
#   2. before each job: replicad is given two new target roots (rewritten configuration +
#      SIGHUP; every round's targets are kept until the end, see round_targets), the
#      source tree is read into the page cache
#      (BENCH_WARM=1: the file daemon drops what it read, and a cold tree would make the job's
#      speed depend on the disk), and the probe `latency watch` (scripts/latency, built from
#      this repository) is started. It stamps, with its own clock, each growth of the volume
#      file (inotify IN_MODIFY, size by fstat) and each IN_CREATE / IN_MOVED_FROM /
#      IN_MOVED_TO / IN_CLOSE_WRITE under both target roots (recursively; new directories are
#      watched and scanned as they appear), and IN_ATTRIB of directories;
#   3. the Full runs (scripts/lab/backup.sh); once replicad's /status shows the job done on
#      both targets (polled every 0.25 s), the probe is stopped and `latency report` reads the
#      volume with bacularec: for every file but directories, bacularec.File.End gives the
#      end of the block that holds its last record (End.BlockEnd). Then, per target,
#        latency(file) = first appearance of its final name under the target (rename from
#                        .brc-tmp.*, or create, or found by a directory scan)
#                      - first time the volume was >= End.BlockEnd bytes long
#      and the report gives p50, p90, p99 (nearest rank) and max over the files; and
#        job end -> complete = the target's last event (a file renamed into place, directory
#                              metadata applied) - the volume's last growth (the block
#                              holding the job's EOS label),
#      "both complete" being the later of the two targets. For the record it also gives
#      the same from replicad's /status (0.25 s resolution), the newest ctime under each
#      root, and a breakdown of where the time goes (large vs small files, time written
#      under the temporary name vs waiting for the rename, the bursts of renames);
#   4. both targets are compared with the source tree (scripts/lab/tree-manifest.py:
#      content, mode, owner, size, mtime of every entry); a difference fails the run.
# The numbers are medians over ROUNDS rounds (and the worst p99). Both timestamps of a
# latency come from the probe (reading an inotify event lags its cause by the probe's
# scheduling delay, on both sides), never from replicad. The SD plugin is not used: it only
# ends replicad's passes sooner; files and directory metadata are put in place when the
# job's EOS label is read. While the script runs, /proc/sys/fs/inotify/max_queued_events is
# raised to 1048576 if lower (restored at exit): the probe fails on a queue overflow.
#
# Usage (root, after scripts/lab/install.sh; with the defaults ~3 GiB of disk writes and
# ~1 min per round on the 2-core VM, plus ~1 min to make the tree; ~8 GiB of disk):
#   scripts/bench-latency.sh
#   BENCH_BIG_MIB=16 BENCH_SMALL=500 ROUNDS=2 scripts/bench-latency.sh   # a quick check
# Env: ROUNDS (3), BENCH_DIR (default /var/tmp/brc-bench: the work dir is BENCH_DIR/latency,
# with the tree, the lab, the volumes and the targets, all on that file system), BENCH_OUT
# (results file, default BENCH_DIR/bench-latency.txt: per-round lines and reports, and the
# summary), KEEP=1 (keep the work dir: events, reports, per-file tables files.R.tsv, the last
# round's targets), BENCH_BIG_N / BENCH_BIG_MIB / BENCH_SMALL (tree: 4 x 192 MiB + 20000),
# BENCH_IDLE (replicad's idle_secs, 2), BENCH_WARM (1), BENCH_VERIFY (1: compare the targets
# with the source every round), BENCH_REPLICAD (a replicad binary to use instead of building
# ./examples/replicad), BENCH_DONE_TIMEOUT (s to wait for /status after the job, 600),
# SETTLE_MAX (s to wait for a quiet disk after removing the targets, 60).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LAB=$HERE/lab
. "$LAB/lib.sh"
. "$HERE/lib-bench.sh"
REPO=$(cd "$HERE/.." && pwd)
BASE=$(lab_abs "${BENCH_DIR:-/var/tmp/brc-bench}")
W=$(lab_abs "$BASE/latency")   # the work dir; removed at exit unless KEEP=1
ROUNDS=${ROUNDS:-3}
RES=${BENCH_OUT:-$BASE/bench-latency.txt}
BIG_N=${BENCH_BIG_N:-4}; BIG_MIB=${BENCH_BIG_MIB:-192}; SMALL=${BENCH_SMALL:-20000}
IDLE=${BENCH_IDLE:-2}; WARM=${BENCH_WARM:-1}; VERIFY=${BENCH_VERIFY:-1}
DONE_TIMEOUT=${BENCH_DONE_TIMEOUT:-600}
export SETTLE_MAX=${SETTLE_MAX:-60}   # bench_settle_disk: the disk is shared, it may never be quiet
bench_need_root bench-latency.sh
bench_ports 19481
MADDR=127.0.0.1:$(bench_free_port $((FD2_PORT + 1)))   # replicad's metrics_listen
export SRC_ROOT=$W/src
T=$SRC_ROOT/tree
# Each round writes to targets of its own (a SIGHUP gives them to replicad), all removed at the
# end: removing the previous round's targets would leave ext4 with tens of thousands of
# freed inodes, and creating files among them is several times slower for a while (perf:
# ext4_create -> recently_deleted), which measured the file system, not replicad.
round_targets() { TA=$W/dr/r$1/target-1; TB=$W/dr/r$1/target-2; mkdir -p "$TA" "$TB"; }
round_targets 1
RPID=""; WPID=""
QF=/proc/sys/fs/inotify/max_queued_events; QOLD=$(cat "$QF")
stop_pid() {   # PID NAME: TERM, then KILL after 20 s; only our own children
  local i
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
  kill -TERM "$1" 2>/dev/null || true
  for i in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$1" 2>/dev/null; then echo "bench-latency.sh: $2 ($1) ignores TERM, sending KILL" >&2; kill -KILL "$1" 2>/dev/null || true; fi
  wait "$1" 2>/dev/null || true
}
cleanup() {
  stop_pid "$WPID" "latency watch"
  stop_pid "$RPID" "replicad run"
  "$LAB/down.sh" "$W" >/dev/null 2>&1 || true
  [ "$(cat "$QF")" = "$QOLD" ] || echo "$QOLD" > "$QF"
  if [ "${KEEP:-0}" = 1 ]; then
    echo "kept: $W"
  else
    rm -rf "$W" 2>/dev/null || { sleep 2; rm -rf "$W"; }   # a daemon may still be closing files
    rmdir "$BASE" 2>/dev/null || true
  fi
}
trap cleanup EXIT
mkdir -p "$(dirname "$RES")"; : > "$RES"
say() { printf '%s\n' "$*" | tee -a "$RES"; }

# ---------------------------------------------------------------- disk space
avail=$(( $(df -Pk "$W" | awk 'NR==2 {print $4}') / 1024 ))   # MiB
tree_mib=$(( BIG_N * BIG_MIB + SMALL * 14 / 1024 + 100 ))
need=$(( tree_mib * (3 * ROUNDS + 1) + 1024 ))   # tree + per round a volume and two targets
say "== disk: $avail MiB free on $(df -P "$W" | awk 'NR==2 {print $6}'), $need MiB needed"
[ "$avail" -ge "$need" ] || { say "bench-latency.sh: not enough disk"; exit 1; }
if [ "$QOLD" -lt 1048576 ]; then echo 1048576 > "$QF"; fi

echo "== building replicad and the probe"
mkdir -p "$W/bin"
if [ -n "${BENCH_REPLICAD:-}" ]; then REP=$BENCH_REPLICAD; else REP=$W/bin/replicad; bench_build "$REPO" "$REP"; fi
LAT=$W/bin/latency
(cd "$REPO" && go build -o "$LAT" ./scripts/latency)

# ---------------------------------------------------------------- tree, lab, daemon
bench_tree "$T" "$BIG_N" "$BIG_MIB" "$SMALL"
content=$(du -sb --apparent-size "$T" | cut -f1)
nfiles=$(find "$T" -type f | wc -l)
if [ "$VERIFY" = 1 ]; then
  echo "== manifest of the source tree"
  "$LAB_PY" "$LAB/tree-manifest.py" "$T" > "$W/src.tsv"
fi
echo "== lab (Bacula 9.6.7 on 127.0.0.1:$DIR_PORT-$FD2_PORT) and replicad run (/status on $MADDR)"
FRESH=1 "$LAB/up.sh" "$W" > "$W/up.log"
mkdir -p "$W/state"
write_conf() {
cat > "$W/replicad.conf" <<CONF
# written by bench-latency.sh
volume_dir = $W/volumes
targets = $TA;$TB
mode = mirror
state_dir = $W/state
strip_prefix = $SRC_ROOT
retry_attempts = 0
plugin_socket = $W/run/replicad.sock
metrics_listen = $MADDR
idle_secs = $IDLE
log_level = info
CONF
}
write_conf
"$REP" check-config -c "$W/replicad.conf" > "$W/check-config.log" 2>&1 || { cat "$W/check-config.log" >&2; exit 1; }
"$REP" run -c "$W/replicad.conf" >> "$W/replicad.log" 2>&1 &
RPID=$!
for i in $(seq 1 100); do
  curl -fsS --max-time 2 "http://$MADDR/status" > /dev/null 2>&1 && break
  kill -0 "$RPID" 2>/dev/null || { tail -20 "$W/replicad.log" >&2; echo "bench-latency.sh: replicad run exited" >&2; exit 1; }
  sleep 0.1
done
say "tree: $nfiles files, $content bytes ($BIG_N x $BIG_MIB MiB + $SMALL small); replicad run: follow $W/volumes, 2 targets on $(df -PT "$W" | awk 'NR==2 {print $2}'), idle_secs $IDLE"
say "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, kernel $(uname -r), $(df -P "$W" | awk 'NR==2 {print $1}') ($(findmnt -no OPTIONS -T "$W")); Bacula $(/usr/sbin/bacula-dir -? 2>&1 | sed -n 's/.*Version: \([0-9.]*\).*/\1/p' | head -1)"

# st_done UNIQUE_JOB - "done FAILED BEHIND" once /status shows the job last done on both
# targets and no pass running (with the targets' failed files and jobs behind); else "wait".
st_done() {
  curl -fsS --max-time 5 "http://$MADDR/status" 2>/dev/null | "$LAB_PY" -c '
import json, sys
s = json.load(sys.stdin); u = sys.argv[1]; t = s.get("targets") or []
if len(t) == 2 and all(x.get("last_job") == u for x in t) and not (s.get("pass") or {}).get("started"):
    print("done", sum(x.get("failed") or 0 for x in t), sum(x.get("jobs_behind") or 0 for x in t))
else:
    print("wait")' "$1" 2>/dev/null || echo wait
}
: > "$W/results"

# ---------------------------------------------------------------- rounds
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r/$ROUNDS"
  if [ "$r" -gt 1 ]; then
    round_targets "$r"; write_conf
    n0=$(grep -c '"configuration reloaded"' "$W/replicad.log" || true)
    kill -HUP "$RPID"
    for i in $(seq 1 100); do [ "$(grep -c '"configuration reloaded"' "$W/replicad.log" || true)" -gt "$n0" ] && break; sleep 0.1; done
    [ "$(grep -c '"configuration reloaded"' "$W/replicad.log" || true)" -gt "$n0" ] || { tail -5 "$W/replicad.log" >&2; echo "bench-latency.sh: replicad did not take the round's targets" >&2; exit 1; }
    sync; sleep 5   # the previous round's write-back
  fi
  if [ "$WARM" = 1 ]; then find "$T" -type f -print0 | xargs -0 cat > /dev/null; fi
  load0=$(cut -d' ' -f1 /proc/loadavg)   # the machine may be shared: say how busy it was
  rm -f "$W/ready"
  "$LAT" watch -vol-dir "$W/volumes" -targets "$TA,$TB" -o "$W/events.$r" -ready "$W/ready" 2> "$W/watch.$r.log" &
  WPID=$!
  for i in $(seq 1 100); do [ -f "$W/ready" ] && break; kill -0 "$WPID" 2>/dev/null || break; sleep 0.05; done
  [ -f "$W/ready" ] || { cat "$W/watch.$r.log" >&2; echo "bench-latency.sh: the probe did not start" >&2; exit 1; }
  "$LAB/backup.sh" "$W" TreeMD5 Full > "$W/backup.$r.log" 2>&1 || { cat "$W/backup.$r.log" >&2; exit 1; }
  jobid=$(cat "$W/run/last-jobid")
  uniq=$(lab_sql "$W" "select Job from Job where JobId=$jobid")
  elapsed=$(sed -n 's/^backup.sh: JobId=.* Elapsed=\([0-9.]*\)s$/\1/p' "$W/backup.$r.log")
  t0=$(date +%s)
  while :; do
    s=$(st_done "$uniq")
    [ "$s" = wait ] || break
    kill -0 "$RPID" 2>/dev/null || { tail -20 "$W/replicad.log" >&2; echo "bench-latency.sh: replicad run exited" >&2; exit 1; }
    [ $(( $(date +%s) - t0 )) -lt "$DONE_TIMEOUT" ] || { tail -20 "$W/replicad.log" >&2; echo "bench-latency.sh: job $uniq not done on both targets after ${DONE_TIMEOUT}s" >&2; exit 1; }
    sleep 0.25
  done
  tdone=$(date +%s.%N)
  [ "$s" = "done 0 0" ] || { curl -fsS "http://$MADDR/status" >&2 || true; echo "bench-latency.sh: job $uniq: failed files / jobs behind: $s" >&2; exit 1; }
  sleep 0.5   # anything the targets still get would be counted
  stop_pid "$WPID" "latency watch"; WPID=""
  grep -q ' 0 overflows$' "$W/watch.$r.log" || { cat "$W/watch.$r.log" >&2; exit 1; }
  vol=$W/volumes/$(bench_vol_of "$W" TreeMD5)
  "$LAT" report -events "$W/events.$r" -vol "$vol" -targets "$TA,$TB" -strip-prefix "$SRC_ROOT" \
    -tsv "$W/files.$r.tsv" -done "$tdone" > "$W/report.$r.txt"
  load1=$(cut -d' ' -f1 /proc/loadavg)
  res=$(sed -n 's/^RESULT //p' "$W/report.$r.txt")
  echo "$res" >> "$W/results"
  ver="not compared"
  if [ "$VERIFY" = 1 ]; then
    for tg in "$TA" "$TB"; do
      "$LAB_PY" "$LAB/tree-manifest.py" "$tg/tree" --compare "$W/src.tsv" > "$W/compare.log" 2>&1 ||
        { cat "$W/compare.log" >&2; echo "bench-latency.sh: round $r: $tg differs from the source tree" >&2; exit 1; }
    done
    ver="both targets equal the source (content, mode, owner, mtime)"
  fi
  kv() { tr ' ' '\n' <<<"$res" | sed -n "s/^$1=//p"; }
  say ""
  say "round $r: JobId $jobid ($uniq), backup.sh ${elapsed} s, volume $(stat -c %s "$vol") B; target 1 p50/p90/p99/max $(kv t0_p50)/$(kv t0_p90)/$(kv t0_p99)/$(kv t0_max) s; target 2 $(kv t1_p50)/$(kv t1_p90)/$(kv t1_p99)/$(kv t1_max) s; job end -> both complete $(kv end_to_complete) s (/status: $(kv end_to_status_done) s); $ver; load average $load0 before, $load1 after"
  sed 's/^/   /' "$W/report.$r.txt" | grep -v '^   RESULT' | tee -a "$RES"
done

# An error in an expansion aborts the loop above without stopping the script: check.
[ "$(grep -c . "$W/results")" = "$ROUNDS" ] || { echo "bench-latency.sh: $(grep -c . "$W/results") of $ROUNDS rounds completed" >&2; exit 1; }

# ---------------------------------------------------------------- summary
med() { tr ' ' '\n' < "$W/results" | sed -n "s/^$1=//p" | bench_median; }
worst() { tr ' ' '\n' < "$W/results" | sed -n "s/^$1=//p" | bench_max; }
per() { tr ' ' '\n' < "$W/results" | sed -n "s/^$1=//p" | paste -sd' '; }
p99=$(worst t0_p99); p99b=$(worst t1_p99); p99w=$(printf '%s\n%s\n' "$p99" "$p99b" | bench_max)
met() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo MET; else echo "NOT MET"; fi; }
say ""
say "== summary: ${content}-byte tree ($nfiles files), Full jobs, replicad run (follow) -> 2 targets, medians of $ROUNDS rounds"
say "latency, written block -> visible under the final name (s): target 1 p50 $(med t0_p50), p90 $(med t0_p90), p99 $(med t0_p99), max $(med t0_max); target 2 p50 $(med t1_p50), p90 $(med t1_p90), p99 $(med t1_p99), max $(med t1_max)"
say "   p99 per round: target 1 [$(per t0_p99)], target 2 [$(per t1_p99)]; worst $p99w s (target p99 < 1 s: $(met "$p99w < 1"))"
say "job end (volume's last growth) -> both targets complete: median $(med end_to_complete) s [$(per end_to_complete)]; target 1 $(med t0_complete) s, target 2 $(med t1_complete) s; replicad's /status done $(med end_to_status_done) s"
say "job duration (volume's first to last growth): median $(med job_secs) s"
echo "results: $RES"
