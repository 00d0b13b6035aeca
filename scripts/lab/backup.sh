#!/bin/bash
# backup.sh WORKDIR JOBNAME [LEVEL] - run a backup job through bconsole, wait for it,
# print JobId / status / volumes, exit 0 only if it terminated OK (JobStatus T).
#   LEVEL: Full (default) | Incremental | Differential
#   env JOB_TIMEOUT (s, default 600): cancel the job if it has not ended by then.
#   The JobId is also written to WORKDIR/run/last-jobid (and WORKDIR/run/jobid.JOBNAME).
#   Jobs on the FIFO storage (Fifo1): the SD opens the FIFO several times per job (a
#   non-blocking probe open that it closes at once, then blocking re-opens), so a single
#   'cat fifo' gets EOF early and the job fails with ENXIO. A reader loop (one segment file
#   per writer open) is started first; the non-empty segments are joined into
#   WORKDIR/fifo-out/<VolumeName>.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
[ $# -ge 2 ] || { echo "usage: $0 WORKDIR JOBNAME [Full|Incremental|Differential]" >&2; exit 2; }
W=$(cd "$1" && pwd); JOB=$2; LEVEL=${3:-Full}; JOB_TIMEOUT=${JOB_TIMEOUT:-600}

show=$(printf 'show job="%s"\n' "$JOB" | bcon "$W" 30)
grep -q "Job: name=$JOB " <<<"$show" || { echo "backup.sh: no job named $JOB" >&2; exit 2; }
reader=""
if grep -q 'Storage: name=Fifo1' <<<"$show"; then
  segdir="$W/fifo-out/segments-$JOB-$(date +%Y%m%d-%H%M%S)"
  mkdir -p "$segdir"
  setsid bash -c 'i=0; while :; do i=$((i+1)); cat "$1" > "$2/seg.$(printf %03d $i)" || exit 0; done' \
     fifo-reader "$W/fifo/fifo1" "$segdir" </dev/null >/dev/null 2>&1 &
  reader=$!
  echo "backup.sh: FIFO reader loop pid $reader, segments in $segdir"
fi
stop_reader() {
  [ -n "$reader" ] || return 0
  kill -TERM -- "-$reader" 2>/dev/null || true   # the reader loop is its own process group
  wait "$reader" 2>/dev/null || true
}
trap stop_reader EXIT

t0=$(date +%s.%N)
out=$(printf 'run job="%s" level=%s yes\n' "$JOB" "$LEVEL" | bcon "$W" 60)
jobid=$(sed -n 's/.*Job queued\. JobId=\([0-9]*\).*/\1/p' <<<"$out")
[ -n "$jobid" ] || { echo "$out" >&2; echo "backup.sh: job not queued" >&2; exit 1; }
echo "backup.sh: JobId=$jobid job=$JOB level=$LEVEL"

if ! printf 'wait jobid=%s\n' "$jobid" | bcon "$W" "$JOB_TIMEOUT" >/dev/null; then
  echo "backup.sh: job $jobid did not end within ${JOB_TIMEOUT}s, cancelling" >&2
  printf 'cancel jobid=%s yes\n' "$jobid" | bcon "$W" 30 >/dev/null || true
  sleep 2
fi
t1=$(date +%s.%N)
if [ -n "$reader" ]; then sleep 1; stop_reader; fi   # let the last cat flush after the SD's close

IFS='|' read -r status level files bytes < <(lab_sql "$W" "select JobStatus, Level, JobFiles, JobBytes from Job where JobId=$jobid")
vols=$(lab_sql "$W" "select m.VolumeName from JobMedia jm join Media m on m.MediaId=jm.MediaId where jm.JobId=$jobid group by m.VolumeName order by min(jm.JobMediaId)" | paste -sd' ')
if [ -n "$reader" ]; then
  segs=$(find "$segdir" -name 'seg.*' -size +0c | sort)
  echo "backup.sh: FIFO writer sessions: $(ls "$segdir" | wc -l), non-empty: $(echo $segs | wc -w) ($(for f in $segs; do printf '%s=%s ' "${f##*/}" "$(stat -c %s "$f")"; done))"
  if [ -n "$vols" ] && [ -n "$segs" ]; then
    v=${vols%% *}
    cat $segs > "$W/fifo-out/$v"
    echo "backup.sh: FIFO stream saved as $W/fifo-out/$v ($(stat -c %s "$W/fifo-out/$v") bytes); segments kept in $segdir"
  fi
fi
printf 'backup.sh: JobId=%s Job=%s Level=%s JobStatus=%s Files=%s Bytes=%s Volumes=[%s] Elapsed=%.2fs\n' \
  "$jobid" "$JOB" "$level" "$status" "$files" "$bytes" "$vols" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"
# the job report lines of interest + warnings/errors
awk -v id="JobId $jobid:" '
  index($0, id) && /Bacula lab-dir/ {r=1}
  r && /Software Compression|Elapsed time|FD Files Written|SD Bytes Written|Last Volume Bytes|Accurate:|Volume name|Termination:/ {print "  " $0}
  r && /Termination:/ {r=0}
  index($0, id) && /[Ee]rror|[Ww]arning|Cannot|cannot|ERR=/ {print "  " $0}' "$W/log/bacula.log" || true
echo "$jobid" > "$W/run/last-jobid"; echo "$jobid" > "$W/run/jobid.$JOB"
[ "$status" = T ] || { echo "backup.sh: job $jobid did NOT terminate OK (JobStatus=$status)" >&2; exit 1; }
