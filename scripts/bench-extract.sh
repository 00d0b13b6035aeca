#!/bin/bash
# bench-extract.sh [WORKDIR] - replicad extract against Bacula's bextract, same volumes,
# same disk, alternating, in one run.
#
#   1. builds a ~1 GiB tree (BENCH_BIG large files, BENCH_SMALL small ones; deterministic),
#   2. backs it up with real Bacula 9.6.7 twice: TreeMD5 (no compression, MD5) and
#      TreeGzip (GZIP level 6, SHA1), each job into its own File volume,
#   3. for each volume, ROUNDS times: bextract, replicad extract (which checks every file
#      against its digest record; bextract does not) and replicad extract -verify=false
#      (order rotated every round), each into a new directory on the same file system
#      (removed only after the rounds: deleting a gigabyte slows the next run's writes),
#      `sync` before each run,
#   4. prints per-run wall time and peak RSS, the medians, MB/s of file content and the
#      ratio bextract/replicad (> 1 = replicad faster).
# Run as root after scripts/lab/install.sh. Env: ROUNDS (5), BENCH_BIG_N / BENCH_BIG_MIB (4 files
# of 192 MiB), BENCH_SMALL (20000 files), BENCH_OUT (where the trees are extracted; default
# WORKDIR, i.e. the volumes' disk; e.g. /dev/shm to take the disk out), KEEP=1 keeps WORKDIR
# (a second run reuses its tree). Takes a few minutes and ~4 GiB of disk.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LAB=$HERE/lab
. "$LAB/lib.sh"
. "$HERE/lib-bench.sh"
REPO=$(cd "$HERE/.." && pwd)
W=$(lab_abs "${1:-/var/tmp/brc-bench}")
ROUNDS=${ROUNDS:-5}
OUT=$(lab_abs "${BENCH_OUT:-$W}")
BIG_N=${BENCH_BIG_N:-4}; BIG_MIB=${BENCH_BIG_MIB:-192}; SMALL=${BENCH_SMALL:-20000}
bench_need_root bench-extract.sh
bench_ports 19411
export SRC_ROOT=$W/src
cleanup() {
  "$LAB/down.sh" "$W" >/dev/null 2>&1 || true
  rm -rf "$OUT"/out-bextract.* "$OUT"/out-replicad.* "$OUT"/out-noverify.*
  [ "${KEEP:-0}" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT

echo "== building replicad"
bench_build "$REPO" "$W/replicad"

T=$SRC_ROOT/tree
bench_tree "$T" "$BIG_N" "$BIG_MIB" "$SMALL"
du -sh --apparent-size "$T"; echo "files: $(find "$T" -type f | wc -l)"

echo "== Bacula backups (TreeMD5: plain + MD5; TreeGzip: GZIP + SHA1)"
FRESH=1 "$LAB/up.sh" "$W" > "$W/up.log"
"$LAB/backup.sh" "$W" TreeMD5 Full | grep 'JobStatus='
"$LAB/backup.sh" "$W" TreeGzip Full | grep 'JobStatus='
"$LAB/down.sh" "$W" > /dev/null
content=$(du -sb --apparent-size "$T" | cut -f1)
bench_settle_disk "$OUT"

run() {  # TOOL VOL OUT -> prints "seconds rss_kib"
  mkdir -p "$3"; sync
  local tf; tf=$(mktemp)
  case $1 in
    bextract) /usr/bin/time -f '%e %M' -o "$tf" "$LAB/extract.sh" "$W/volumes" "$3" "$2" > "$W/last-$1.log" 2>&1 ;;
    replicad) /usr/bin/time -f '%e %M' -o "$tf" "$W/replicad" extract -q -o "$3" "$W/volumes/$2" > "$W/last-$1.log" 2>&1 ;;
    noverify) /usr/bin/time -f '%e %M' -o "$tf" "$W/replicad" extract -q -verify=false -o "$3" "$W/volumes/$2" > "$W/last-$1.log" 2>&1 ;;
  esac
  tail -1 "$tf"; rm -f "$tf"
}
median() { bench_median; }

: > "$W/summary"
printf '\n%-9s %-9s %5s %9s %9s\n' volume tool round seconds rss_MiB
for job in TreeMD5 TreeGzip; do
  v=$(bench_vol_of "$W" "$job")
  for tool in bextract replicad noverify; do : > "$W/t-$tool"; : > "$W/r-$tool"; done
  for r in $(seq 1 "$ROUNDS"); do
    case $((r % 3)) in
      1) order="bextract replicad noverify" ;; 2) order="replicad noverify bextract" ;; 0) order="noverify bextract replicad" ;;
    esac
    for tool in $order; do
      # A fresh directory per run: removing the last run's gigabyte (with
      # online discard) would slow the next run's file creation.
      read -r s kib < <(run "$tool" "$v" "$OUT/out-$tool.$r")
      echo "$s" >> "$W/t-$tool"; echo "$kib" >> "$W/r-$tool"
      printf '%-9s %-9s %5d %9.2f %9.1f\n' "$job" "$tool" "$r" "$s" "$(echo "$kib / 1024" | bc -l)"
      [ "$tool" = bextract ] || grep -q '0 mismatched' "$W/last-$tool.log" || { echo "bench-extract.sh: $tool reported problems:"; cat "$W/last-$tool.log"; exit 1; }
    done
  done
  # sanity: both trees hold the same file content
  (cd "$OUT/out-bextract.1$T" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$W/sum-b"
  (cd "$OUT/out-replicad.1$T" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$W/sum-r"
  cmp -s "$W/sum-b" "$W/sum-r" || { echo "bench-extract.sh: $job: trees differ!" >&2; diff "$W/sum-b" "$W/sum-r" | head; exit 1; }
  # Deleting gigabytes makes the next file creations slow for a while (discard, ext4's
  # freed-inode reuse delay): settle before the next volume's rounds (lib-bench.sh).
  rm -rf "$OUT"/out-*.[0-9]*; bench_settle_disk "$OUT"
  mb=$(median < "$W/t-bextract"); mr=$(median < "$W/t-replicad")
  mn=$(median < "$W/t-noverify")
  rb=$(sort -n "$W/r-bextract" | tail -1); rr=$(sort -n "$W/r-replicad" | tail -1); rn=$(sort -n "$W/r-noverify" | tail -1)
  printf '%s (%s, %s bytes of content): bextract median %.2f s (%.0f MB/s, peak RSS %.1f MiB); replicad median %.2f s (%.0f MB/s, peak RSS %.1f MiB), ratio %.2fx; replicad -verify=false median %.2f s (%.0f MB/s, peak RSS %.1f MiB), ratio %.2fx\n' \
    "$job" "$v" "$content" "$mb" "$(echo "$content / $mb / 1000000" | bc -l)" "$(echo "$rb / 1024" | bc -l)" \
    "$mr" "$(echo "$content / $mr / 1000000" | bc -l)" "$(echo "$rr / 1024" | bc -l)" "$(echo "$mb / $mr" | bc -l)" \
    "$mn" "$(echo "$content / $mn / 1000000" | bc -l)" "$(echo "$rn / 1024" | bc -l)" "$(echo "$mb / $mn" | bc -l)" | tee -a "$W/summary"
done
echo; cat "$W/summary"
