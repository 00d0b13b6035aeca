#!/bin/bash
# extract.sh VOLUMEDIR OUTDIR [VOLUMENAME...]
#   Restore everything in the given Bacula volume files with Bacula's own bextract (no
#   director/catalog needed). A minimal bacula-sd.conf (File device "LabVolumes",
#   Archive Device = VOLUMEDIR) is written to a temp dir. Files land under OUTDIR with their
#   absolute backup paths (OUTDIR/<original path>).
#   VOLUMENAME...: file names in VOLUMEDIR, in order (a job spanning volumes needs all of
#   them, in order); default: every file in VOLUMEDIR, sorted.
#   env BSR=file.bsr     use a bootstrap file (bextract -b) to select jobs/files (the
#                        device gets the bsr's MediaType, which bextract insists on)
#   env EXTRACT_OPTS     extra bextract options, e.g. "-i include-list" / "-p"
#   Known limits of bextract 9.6.7: ACL/xattr streams are ignored ("Unknown stream=1007/
#   1008/1998"), deleted-file records are ignored, interleaved sessions of several jobs
#   are mixed unless a BSR selects one job.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
[ $# -ge 2 ] || { echo "usage: $0 VOLUMEDIR OUTDIR [VOLUMENAME...]" >&2; exit 2; }
VD=$(cd "$1" && pwd); OUT=$(lab_abs "$2"); shift 2
if [ $# -gt 0 ]; then vols=$(IFS='|'; echo "$*")
else vols=$(cd "$VD" && find . -maxdepth 1 -type f ! -name '*.tmp' ! -name '.*' -printf '%f\n' | sort | paste -sd'|'); fi
[ -n "$vols" ] || { echo "extract.sh: no volumes in $VD" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mt=File1
[ -z "${BSR:-}" ] || mt=$(sed -n 's/^MediaType="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$BSR" | head -1)
conf=$(lab_tool_sdconf "$VD" "$tmp" "${mt:-File1}")
echo "extract.sh: bextract -V '$vols' from $VD -> $OUT"
"$LAB_BIN/bextract" -c "$conf" -V "$vols" ${BSR:+-b "$BSR"} ${EXTRACT_OPTS:-} LabVolumes "$OUT" </dev/null
