#!/bin/bash
# restore.sh WORKDIR OUTDIR JOBID[,JOBID...]  - restore through the Director and the FD
#   (bconsole: restore jobid=... where=OUTDIR all done yes). With a Full followed by
#   Incrementals/Differentials the Director builds the tree from the catalog, so files
#   recorded as deleted (Accurate mode) are NOT restored. Unlike bextract, the FD restores
#   ACLs and xattrs. Files land in OUTDIR/<original absolute path>.
#   env CLIENT (default lab-fd): the client whose backups are restored (lab-fd2 for the
#   Interleave jobs); the files are restored through it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
[ $# -ge 3 ] || { echo "usage: $0 WORKDIR OUTDIR JOBID[,JOBID...]" >&2; exit 2; }
W=$(cd "$1" && pwd); OUT=$(lab_abs "$2"); IDS=$3
out=$(printf 'restore jobid=%s client=%s where="%s" replace=always all done yes\n' "$IDS" "${CLIENT:-lab-fd}" "$OUT" | bcon "$W" 120)
rid=$(sed -n 's/.*Job queued\. JobId=\([0-9]*\).*/\1/p' <<<"$out")
[ -n "$rid" ] || { echo "$out" >&2; echo "restore.sh: restore not queued" >&2; exit 1; }
printf 'wait jobid=%s\n' "$rid" | bcon "$W" "${JOB_TIMEOUT:-600}" >/dev/null
st=$(lab_sql "$W" "select JobStatus||' files='||JobFiles||' bytes='||JobBytes from Job where JobId=$rid")
echo "restore.sh: restore JobId=$rid of jobs $IDS -> $OUT: JobStatus=$st"
awk -v id="JobId $rid:" 'index($0,id) && /[Ee]rror|[Ww]arning|Termination/' "$W/log/bacula.log" | sed 's/^/  /' || true
[ "${st%% *}" = T ]
