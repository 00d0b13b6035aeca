#!/bin/bash
# bench-replicate.sh - the replication targets of issue 3, measured side by side in one run:
# `replicad replicate` (mirror mode) against cp -a, against a parse-only pass, against
# itself with one target, and its peak memory. Same approach as bench-extract.sh (real
# Bacula 9.6.7 volumes, rounds whose order rotates, medians and ratios, never single runs).
#
#   1. mirror replication of a ~1 GiB plain + MD5 volume (bench-extract's tree: a few large
#      files + ~20k small ones) vs `cp -a` of the source tree, and vs `cp -a && sync`:
#      replicate writes atomically and durably (temporary names, batched syncfs, then
#      rename), which cp alone does not; each run onto a fresh file system on the disk (see
#      "The disk" below), the volume and the tree both read from the page cache (nothing is
#      dropped; the inputs of each case are read once before its rounds, see warm).
#      Target: replicate <= 1.3x cp's time.
#   2. the same unchanged Full replicated again (-replay) with skip_unchanged = yes onto the
#      target that already holds it: bytes the replicad process wrote (write_bytes of
#      /proc/PID/io, read when it has exited; state_dir and its output on tmpfs, whose
#      writes are not counted, so that only the target's bytes are), target 0; and its time vs
#      `replicad ls VOLUME > /dev/null`, the closest parse-only pass (same reader, same MD5
#      check, prints one line per file and writes nothing). Target: >= 0.8x ls's speed.
#   3. two unthrottled targets vs one (same volume as 1; target <= 1.2x; also on tmpfs to
#      take the shared disk out), and on a ~20 MiB volume an unlimited target next to one
#      limited with :bwlimit=1M vs the unlimited target alone. Measure: the unlimited
#      target's completion time = newest ctime under its root (files are renamed into place
#      and directory metadata is applied last) minus the start of the command. queue_size
#      is 4M (smaller than the volume) so the limited target's backlog goes through its
#      spool, as a real volume bigger than the 32 MiB default queue would. Target: not
#      slowed (<= 1.2x alone, far from the limited target's ~20 s). Measured twice: the
#      limited target on the same disk (sharing its journal and flushes), then on tmpfs (a
#      remote site in practice, where only the engine is shared).
#   4. peak RSS replicating a volume holding one 4 GiB incompressible file, and a volume of
#      200k small files (BENCH_MEM_ROUNDS runs each, default min(ROUNDS, 3)). Target: < 64 MiB.
#   5. the volume of case 1 replicated to an encrypted mirror (encrypt_key: a throwaway key
#      made for the run, in the tmpfs state dir only) vs a plain mirror, alternating, each
#      onto a fresh file system. Target (issue 4): encrypted <= 1.3x plain.
# The disk: every timed run of cases 1, 3 and 5 that writes to the disk writes to a new ext4
# made for it over one image file on the work dir's disk, through a loop device with direct
# I/O (bench_fresh_fs in lib-bench.sh: on the work dir's own file system, a run after a
# deletion was up to 3x slower). Cases 2 and 4 write to the work dir's file system; it is
# mounted with discard here, so their deletions are followed by settle_disk (wait until the
# disk is quiet), never between the timed runs of a case.
# Peak RSS is /usr/bin/time's %M (case 2's replays: ru_maxrss from wait4, the same number).
#
# Usage (root, loop devices, after scripts/lab/install.sh; ~20 min and ~31 GiB of disk with the
# defaults):
#   scripts/bench-replicate.sh
# Env: ROUNDS (5), BENCH_DIR (default /var/tmp/brc-bench: the work dir is BENCH_DIR/replicate,
# trees, volumes and the targets, all on that file system), BENCH_OUT (results file, default
# BENCH_DIR/bench-replicate.txt: per-run lines and the summary), KEEP=1 (keep the work dir
# and the tmpfs state dirs; a second run reuses the source trees), CASES ("1 2 3 4 5"), BENCH_BIG_N / BENCH_BIG_MIB /
# BENCH_SMALL (tree of case 1: 4 x 192 MiB + 20000), BENCH_SMALLVOL_FILES (10 x 2 MiB,
# case 3b), BENCH_BWLIMIT (1M), BENCH_HUGE_MIB (4096), BENCH_MANY (200000), BENCH_FS_MIB (6144:
# the image of the fresh file systems, which hold two copies of the tree in case 3). When the disk
# is short the script keeps fewer outputs, then shrinks the huge file, and says so.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LAB=$HERE/lab
. "$LAB/lib.sh"
. "$HERE/lib-bench.sh"
REPO=$(cd "$HERE/.." && pwd)
BASE=$(lab_abs "${BENCH_DIR:-/var/tmp/brc-bench}")
W=$(lab_abs "$BASE/replicate")   # the work dir; removed at exit unless KEEP=1
ROUNDS=${ROUNDS:-5}
CASES=${CASES:-1 2 3 4 5}
RES=${BENCH_OUT:-$BASE/bench-replicate.txt}
BIG_N=${BENCH_BIG_N:-4}; BIG_MIB=${BENCH_BIG_MIB:-192}; SMALL=${BENCH_SMALL:-20000}
SV_FILES=${BENCH_SMALLVOL_FILES:-10}; BWLIMIT=${BENCH_BWLIMIT:-1M}
HUGE_MIB=${BENCH_HUGE_MIB:-4096}; MANY=${BENCH_MANY:-200000}
bench_need_root bench-replicate.sh
bench_ports 19451
export SRC_ROOT=$W/src
SHM=$(mktemp -d /dev/shm/brc-bench-replicate.XXXXXX)   # state_dir of every run (tmpfs)
OUTD=$W/out              # outputs of cases 2 and 4 (the work dir's file system)
FSM=$W/fs                # mount point of the fresh file systems (cases 1, 3, 5)
FS_MIB=${BENCH_FS_MIB:-6144}
cleanup() {
  "$LAB/down.sh" "$W" >/dev/null 2>&1 || true
  bench_fs_down || true
  rm -rf "$OUTD"
  if [ "${KEEP:-0}" = 1 ]; then
    echo "kept: $W and $SHM"
  else
    rm -rf "$SHM" "$W"; rmdir "$BASE" 2>/dev/null || true
  fi
}
trap cleanup EXIT
mkdir -p "$(dirname "$RES")"; : > "$RES"
say() { printf '%s\n' "$*" | tee -a "$RES"; }

# ---------------------------------------------------------------- disk space
# Peak use: the trees and volumes (+ the huge file's source while it is backed up), the image
# of the fresh file systems, and the outputs of case 4, which keeps each run's output until
# its rounds are over (deleting gigabytes on a file system mounted with discard keeps the
# disk busy for minutes, which would slow the next runs; the deletions are followed by
# settle_disk).
avail=$(( $(df -Pk "$W" | awk 'NR==2 {print $4}') / 1024 ))   # MiB
tree_mib=$(( BIG_N * BIG_MIB + SMALL * 14 / 1024 + 100 ))
many_mib=$(( MANY * 5 / 1024 + 100 ))                          # 4 KiB blocks + dirs
MROUNDS=${BENCH_MEM_ROUNDS:-$(( ROUNDS < 3 ? ROUNDS : 3 ))}
keepout=1
need() {
  local c4=$(( (keepout ? MROUNDS : 1) * (HUGE_MIB + many_mib) ))
  echo $(( 2 * tree_mib + HUGE_MIB + 2 * many_mib + 100 + FS_MIB + (c4 > HUGE_MIB ? c4 : HUGE_MIB) + 1024 ))
}
say "== disk: $avail MiB free on $(df -P "$W" | awk 'NR==2 {print $6}'), $(need) MiB needed"
if [ "$avail" -lt "$(need)" ]; then
  keepout=0
  say "NOTE: not enough disk to keep every round's output: each output is deleted right after its run (the next run may write more slowly)"
fi
if [ "$avail" -lt "$(need)" ]; then
  HUGE_MIB=$(( (avail - $(need) + 2 * HUGE_MIB) / 2 / 512 * 512 ))   # roughly: the volume + one copy
  [ "$HUGE_MIB" -ge 512 ] || { say "bench-replicate.sh: not enough disk ($avail MiB free)"; exit 1; }
  say "NOTE: not enough disk for the 4 GiB file: case 4 uses a $HUGE_MIB MiB file"
fi

echo "== building replicad"
REP=$W/replicad
bench_build "$REPO" "$REP"

# ---------------------------------------------------------------- trees and backups
T=$SRC_ROOT/tree
bench_tree "$T" "$BIG_N" "$BIG_MIB" "$SMALL"
SV=$SRC_ROOT/smallvol
if [ ! -f "$SV.done" ] || [ "$(cat "$SV.done")" != "$SV_FILES" ]; then
  echo "== small volume tree: $SV_FILES x 2 MiB + 200 small files in $SV"
  rm -rf "$SV"; mkdir -p "$SV/small"
  for i in $(seq 1 "$SV_FILES"); do bench_random_file "$SV/file-$i.bin" $((2 << 20)) "smallvol$i"; done
  bench_small_files "$SV/small" 200 2000 100 7
  echo "$SV_FILES" > "$SV.done"
fi
MN=$SRC_ROOT/many
if [ ! -f "$MN.done" ] || [ "$(cat "$MN.done")" != "$MANY" ]; then
  echo "== many-files tree: $MANY small files (mean ~1 kB) in $MN"
  rm -rf "$MN"; mkdir -p "$MN"
  bench_small_files "$MN" "$MANY" 1000 500 11
  echo "$MANY" > "$MN.done"
fi
HG=$SRC_ROOT/huge
echo "== huge file: $HUGE_MIB MiB of AES-CTR output in $HG (removed once backed up)"
rm -rf "$HG"; mkdir -p "$HG"
bench_random_file "$HG/huge.bin" $((HUGE_MIB << 20)) huge

echo "== Bacula backups (plain + MD5): TreeMD5 (tree), BenchSmallVol, BenchHuge, BenchMany"
FRESH=1 "$LAB/up.sh" "$W" > "$W/up.log"
# Three more FileSets/jobs like TreeMD5 (no compression, MD5), loaded with a reload.
for j in SmallVol:smallvol Huge:huge Many:many; do
  printf 'FileSet { Name = "FS-Bench%s"; Include { Options { signature = MD5 } File = "%s" } }\n' "${j%%:*}" "$SRC_ROOT/${j#*:}"
  printf 'Job { Name = "Bench%s"; JobDefs = LabDefaults; FileSet = "FS-Bench%s"; }\n' "${j%%:*}" "${j%%:*}"
done >> "$W/etc/bacula-dir.conf"
printf 'reload\n' | bcon "$W" 30 > "$W/reload.log"
for job in TreeMD5 BenchSmallVol BenchHuge BenchMany; do
  "$LAB/backup.sh" "$W" "$job" Full | grep 'JobStatus='
done
"$LAB/down.sh" "$W" > /dev/null
rm -rf "$HG"
V1=$W/volumes/$(bench_vol_of "$W" TreeMD5); VS=$W/volumes/$(bench_vol_of "$W" BenchSmallVol)
VH=$W/volumes/$(bench_vol_of "$W" BenchHuge); VM=$W/volumes/$(bench_vol_of "$W" BenchMany)
content=$(du -sb --apparent-size "$T" | cut -f1)
nfiles=$(find "$T" -type f | wc -l)
svcontent=$(du -sb --apparent-size "$SV" | cut -f1)
say "volumes: tree $(stat -c %s "$V1") B ($nfiles files, $content B of content); small $(stat -c %s "$VS") B ($svcontent B); huge $(stat -c %s "$VH") B; many $(stat -c %s "$VM") B ($MANY files)"
say "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, kernel $(uname -r), $(df -PT "$W" | awk 'NR==2 {print $2}') on $(df -P "$W" | awk 'NR==2 {print $1}') ($(findmnt -no OPTIONS -T "$W"))"

# ---------------------------------------------------------------- helpers
# ioexec CMD... : runs CMD, waits for its exit without reaping it (waitid WNOWAIT), reads
# /proc/PID/io of the zombie (the whole process: every thread's counts), then reaps it.
# Prints to fd 3 "seconds maxrss_KiB write_bytes read_bytes oublock_bytes".
cat > "$W/ioexec.py" <<'PY'
import os, sys, time
t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
t1 = time.monotonic()
io = dict((k, int(v)) for k, v in (l.split(":") for l in open("/proc/%d/io" % pid)))
_, status, ru = os.wait4(pid, 0)
os.write(3, b"%.3f %d %d %d %d\n" % (t1 - t0, ru.ru_maxrss, io["write_bytes"], io["read_bytes"], ru.ru_oublock * 512))
sys.exit(os.waitstatus_to_exitcode(status))
PY
# timed LOG CMD... -> "seconds rss_KiB" (CMD's output goes to LOG; failure stops the script)
timed() {
  local log=$1 tf; shift; tf=$(mktemp)
  if ! /usr/bin/time -f '%e %M' -o "$tf" "$@" > "$log" 2>&1; then
    echo "bench-replicate.sh: failed: $*" >&2; cat "$log" >&2; rm -f "$tf"; exit 1
  fi
  tail -1 "$tf"; rm -f "$tf"
}
# conf FILE STATE_DIR TARGETS [LINE...] - a replicad configuration
conf() {
  local f=$1 st=$2 tg=$3; shift 3
  { echo "targets = $tg"; echo "mode = mirror"; echo "state_dir = $st"; echo "strip_prefix = $SRC_ROOT"
    echo "retry_attempts = 0"; printf '%s\n' "$@"; } > "$f"
}
# check_ok LOG N - replicad's summary shows N targets "ok"
check_ok() {
  [ "$(grep -c '^target .*: ok:' "$1")" = "$2" ] || { echo "bench-replicate.sh: replicate did not end well:" >&2; cat "$1" >&2; exit 1; }
}
mib() { bench_calc "$1 / 1024"; }
# record CASE TOOL R SECONDS KIB [NOTE] - one run: kept in $W/t-CASE-TOOL / $W/r-CASE-TOOL
record() {
  echo "$4" >> "$W/t-$1-$2"; echo "$5" >> "$W/r-$1-$2"
  say "$(printf '%-5s %-14s %5d %9.3f %9.1f  %s' "$1" "$2" "$3" "$4" "$(mib "$5")" "${6:-}")"
}
med() { bench_median < "$W/t-$1-$2"; }
rss() { mib "$(bench_max < "$W/r-$1-$2")"; }
met() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo MET; else echo "NOT MET"; fi; }
order3() { case $(($1 % 3)) in 1) echo "$2 $3 $4" ;; 2) echo "$3 $4 $2" ;; 0) echo "$4 $2 $3" ;; esac; }
order2() { if [ $(($1 % 2)) = 1 ]; then echo "$2 $3"; else echo "$3 $2"; fi; }
newest_ctime() { find "$1" -printf '%C@\n' | sort -g | tail -1; }
devstat=/sys/dev/block/$(mountpoint -d "$(findmnt -no TARGET -T "$W")")/stat   # case 2's device writes
[ -r "$devstat" ] || devstat=""
settle_disk() { bench_settle_disk "$W"; }   # a quiet disk and aged freed inodes (lib-bench.sh)
drop_outputs() { rm -rf "$OUTD"; mkdir -p "$OUTD"; settle_disk; }
# warm PATH... - read the files into the page cache: Bacula's file daemon drops the cache of
# what it backed up (fadvise DONTNEED), so the source tree is cold after the backup; every
# run must read hot. Prints how much of them is cached.
warm() {
  find "$@" -type f -print0 | xargs -0 cat > /dev/null
  echo "   (inputs cached: $(find "$@" -type f -print0 | xargs -0 fincore -b -n -o RES,SIZE | awk '{r += $1; t += $2} END {p = t ? 100 * r / t : 0; printf "%.1f%% of %.0f MiB", (p > 100 ? 100 : p), t / 1048576}'))"
}
rm -rf "$OUTD"; mkdir -p "$OUTD"
rm -f "$W"/t-* "$W"/r-* "$W"/u-* "$W"/wb "$W"/devw "$W"/skipped "$W"/written   # a kept work dir's last results
bench_fs_init "$W/fs.img" "$FS_MIB" "$FSM"
settle_disk
# the disk's own sequential write speed, for scale: the least time in which it makes the
# volume's bytes durable (median of 3)
for r in 1 2 3; do
  bench_fresh_fs
  read -r s k < <(timed "$W/last.log" dd if="$V1" of="$FSM/dd.bin" bs=1M conv=fsync)
  echo "$s" >> "$W/t-dd"
done
bench_fs_down
dds=$(bench_median < "$W/t-dd")
say "disk: dd of the tree volume (hot) with conv=fsync onto a fresh file system, median of 3: $(bench_calc "$(stat -c %s "$V1") / $dds / 1000000") MB/s ($dds s)"
: > "$W/summary"
sum() { printf '%s\n' "$*" >> "$W/summary"; say "$*"; }
say ""
say "$(printf '%-5s %-14s %5s %9s %9s  %s' case run round seconds rss_MiB note)"

# ---------------------------------------------------------------- 1. replicate vs cp -a
if [[ " $CASES " == *" 1 "* ]]; then
  warm "$T" "$V1"
  for r in $(seq 1 "$ROUNDS"); do
    for tool in $(order3 "$r" cp cp+sync replicate); do
      bench_fresh_fs; d=$FSM/c1; mkdir -p "$d"; sync
      case $tool in
        cp) read -r s k < <(timed "$W/last.log" cp -a "$T" "$d/") ;;
        cp+sync) read -r s k < <(timed "$W/last.log" sh -c 'cp -a "$1" "$2/" && sync' sh "$T" "$d") ;;
        replicate)
          conf "$SHM/c1.$r.conf" "$SHM/c1.$r" "$d"
          read -r s k < <(timed "$W/last.log" "$REP" replicate -c "$SHM/c1.$r.conf" "$V1")
          check_ok "$W/last.log" 1 ;;
      esac
      record c1 "$tool" "$r" "$s" "$k"
      if [ "$r" = 1 ] && [ $tool = replicate ]; then   # sanity: the replica holds the tree's content
        diff -rq "$T" "$d/tree" > /dev/null || { echo "bench-replicate.sh: replica differs from the tree" >&2; diff -rq "$T" "$d/tree" | head >&2; exit 1; }
      fi
    done
  done
  bench_fs_down
  mc=$(med c1 cp); ms=$(med c1 cp+sync); mr=$(med c1 replicate)
  sum "1. mirror replication of the ${content}-byte tree ($nfiles files), medians of $ROUNDS: cp -a $mc s ($(bench_calc "$content / $mc / 1000000") MB/s, RSS $(rss c1 cp) MiB); cp -a && sync $ms s (RSS $(rss c1 cp+sync) MiB); replicate $mr s ($(bench_calc "$content / $mr / 1000000") MB/s, RSS $(rss c1 replicate) MiB)"
  sum "   replicate / cp = $(bench_calc "$mr / $mc")x (target <= 1.3x: $(met "$mr / $mc <= 1.3")); replicate / (cp && sync) = $(bench_calc "$mr / $ms")x; replicate / (dd of the volume with conv=fsync, $dds s) = $(bench_calc "$mr / $dds")x"
  sum "   replicate's files are durable when it exits (written under temporary names, syncfs per batch, renamed into place); cp -a leaves them in the page cache, cp -a && sync flushes them. Caches are not dropped: the tree and the volume are read hot."
fi

# ---------------------------------------------------------------- 2. unchanged Full again
if [[ " $CASES " == *" 2 "* ]]; then
  warm "$V1"
  d=$OUTD/c2; st=$SHM/c2; mkdir -p "$d"
  conf "$st.conf" "$st" "$d" "skip_unchanged = yes"
  sync
  read -r s k < <(timed "$W/last.log" "$REP" replicate -c "$st.conf" "$V1")
  check_ok "$W/last.log" 1
  record c2 first-copy 0 "$s" "$k" "(fills the target and the index; not in the medians)"
  for r in $(seq 1 "$ROUNDS"); do
    for tool in $(order2 "$r" replay ls); do
      sync
      case $tool in
        replay)
          w0=$([ -n "$devstat" ] && awk '{printf "%.0f\n", $7}' "$devstat" || echo 0)
          # Its output goes to tmpfs: written to the disk, the summary it prints would be
          # counted in its write_bytes (4 KiB, seen with perf's writeback_dirty_folio).
          python3 "$W/ioexec.py" "$REP" replicate -replay -c "$st.conf" "$V1" > "$SHM/last.log" 2>&1 3> "$W/io.txt" ||
            { cat "$SHM/last.log" >&2; exit 1; }
          sync; w1=$([ -n "$devstat" ] && awk '{printf "%.0f\n", $7}' "$devstat" || echo 0)
          check_ok "$SHM/last.log" 1
          read -r s k wb rb ob < "$W/io.txt"
          line=$(grep '^target ' "$SHM/last.log")
          written=$(sed -n 's/.* bytes sent, \([0-9]*\) written.*/\1/p' <<<"$line")
          skipped=$(sed -n 's/.* \([0-9]*\) unchanged skipped.*/\1/p' <<<"$line")
          echo "$wb" >> "$W/wb"; echo "$(( (w1 - w0) * 512 ))" >> "$W/devw"; echo "$skipped" >> "$W/skipped"; echo "$written" >> "$W/written"
          record c2 replay "$r" "$s" "$k" "write_bytes=$wb (oublock $ob) read_bytes=$rb; device writes incl. sync=$(( (w1 - w0) * 512 )) B; replicad: $written written, $skipped unchanged skipped"
          ;;
        ls)
          read -r s k < <(timed /dev/null "$REP" ls "$V1")
          record c2 ls "$r" "$s" "$k" "(parse + MD5 check, one line per file to /dev/null)"
          ;;
      esac
    done
  done
  drop_outputs
  mp=$(med c2 replay); ml=$(med c2 ls)
  lines=$("$REP" ls "$V1" | wc -c)
  sum "2. unchanged Full again (-replay, skip_unchanged = yes, index in state_dir on tmpfs), medians of $ROUNDS: replay $mp s (RSS $(rss c2 replay) MiB); replicad ls $ml s (RSS $(rss c2 ls) MiB, prints $lines bytes)"
  sum "   speed vs parse-only = ls time / replay time = $(bench_calc "$ml / $mp")x (target >= 0.8x: $(met "$ml / $mp >= 0.8"))"
  sum "   bytes written by the replicad process (/proc/PID/io write_bytes): max $(bench_max < "$W/wb") over $ROUNDS replays (target 0: $(met "$(bench_max < "$W/wb") == 0")); replicad's own count: $(bench_max < "$W/written") written, $(bench_median < "$W/skipped") of $nfiles files skipped as unchanged; whole-device writes during replay + sync (all processes, incl. the journal's inode updates): median $(bench_median < "$W/devw") B"
  sum "   write_bytes counts what the process dirties in the page cache of file systems that write back (tmpfs does not: the catalog and index in state_dir, and the summary it prints, are not counted): file data, and ext4 metadata blocks (inode tables, directories, bitmaps) dirtied through the block device. With 0 content bytes written (replicad's count), anything it counts is such metadata (an unchanged run leaves every inode's ctime under the target as it was: TestMirrorSkipUnchanged)."
fi

# ---------------------------------------------------------------- 3. fan-out and isolation
if [[ " $CASES " == *" 3 "* ]]; then
  warm "$V1" "$VS"
  for where in disk tmpfs; do
    for r in $(seq 1 "$ROUNDS"); do
      for tool in $(order2 "$r" one two); do
        if [ $where = disk ]; then bench_fresh_fs; b=$FSM/c3; else b=$SHM/out-c3-$tool.$r; fi
        if [ $tool = one ]; then tg=$b; n=1; else tg="$b-a;$b-b"; n=2; fi
        conf "$SHM/c3.conf" "$SHM/c3-$where-$tool.$r" "$tg"
        sync
        read -r s k < <(timed "$W/last.log" "$REP" replicate -c "$SHM/c3.conf" "$V1")
        check_ok "$W/last.log" "$n"
        record "c3$where" "$tool" "$r" "$s" "$k" "$n target(s) on $where"
        if [ $where = tmpfs ]; then rm -rf "$b" "$b-a" "$b-b"; fi
      done
    done
    bench_fs_down
    m1=$(med "c3$where" one); m2=$(med "c3$where" two)
    sum "3a. fan-out, targets on $where, medians of $ROUNDS: one target $m1 s (RSS $(rss "c3$where" one) MiB); two targets $m2 s (RSS $(rss "c3$where" two) MiB); two / one = $(bench_calc "$m2 / $m1")x (target <= 1.2x: $(met "$m2 / $m1 <= 1.2"))"
  done
  # The limited target on the same disk as the unlimited one (both write to it: its file
  # creations and flushes share the disk's journal with the other's), then on tmpfs (a remote
  # site in practice: only the engine is shared).
  for lwhere in disk tmpfs; do
    rm -f "$W/u-alone" "$W/u-with-limited" "$W/t-c3b-with-limited" "$W/r-c3b-with-limited" "$W/t-c3b-alone" "$W/r-c3b-alone"
    for r in $(seq 1 "$ROUNDS"); do
      for tool in $(order2 "$r" alone with-limited); do
        bench_fresh_fs; u=$FSM/unlimited
        if [ $lwhere = disk ]; then l=$FSM/limited; else l=$SHM/out-c3b-limited.$r; fi
        if [ $tool = alone ]; then tg=$u; n=1; else tg="$u;$l:bwlimit=$BWLIMIT"; n=2; fi
        conf "$SHM/c3b.conf" "$SHM/c3b-$lwhere-$tool.$r" "$tg" "queue_size = 4M"
        sync
        t0=$(date +%s.%N)
        read -r s k < <(timed "$W/last.log" "$REP" replicate -c "$SHM/c3b.conf" "$VS")
        check_ok "$W/last.log" "$n"
        ud=$(bench_calc "$(newest_ctime "$u") - $t0")
        echo "$ud" >> "$W/u-$tool"
        record c3b "$tool" "$r" "$s" "$k" "limited target on $lwhere: unlimited target complete after $ud s$([ $n = 1 ] || echo "; limited one after $s s (whole run)")"
        rm -rf "$SHM/out-c3b-limited.$r"
      done
    done
    mu1=$(bench_median < "$W/u-alone"); mu2=$(bench_median < "$W/u-with-limited"); ml=$(med c3b with-limited)
    sum "3b. ${svcontent}-byte volume, queue_size 4M, limited target on $lwhere, medians of $ROUNDS: unlimited target alone complete after $mu1 s; next to a :bwlimit=$BWLIMIT target complete after $mu2 s ($(bench_calc "$mu2 / $mu1")x; target: not slowed, <= 1.2x: $(met "$mu2 / $mu1 <= 1.2")), while the limited target took $ml s (whole run, RSS $(rss c3b with-limited) MiB)"
  done
  sum "   completion = newest ctime under the unlimited target's root (files renamed into place, directory metadata applied last) minus the start of the command"
  bench_fs_down
fi

# ---------------------------------------------------------------- 4. memory
if [[ " $CASES " == *" 4 "* ]]; then
  warm "$VH" "$VM"
  for r in $(seq 1 "$MROUNDS"); do
    for tool in $(order2 "$r" huge many); do
      d=$OUTD/c4-$tool.$r
      if [ $tool = huge ]; then v=$VH; else v=$VM; fi
      conf "$SHM/c4.conf" "$SHM/c4-$tool.$r" "$d"
      sync
      read -r s k < <(timed "$W/last.log" "$REP" replicate -c "$SHM/c4.conf" "$v")
      check_ok "$W/last.log" 1
      record c4 "$tool" "$r" "$s" "$k"
      [ "$keepout" = 1 ] || { rm -rf "$d"; settle_disk; }
    done
  done
  drop_outputs
  sum "4. memory, $MROUNDS runs each: one ${HUGE_MIB} MiB file: median $(med c4 huge) s ($(bench_calc "($HUGE_MIB * 1048576) / $(med c4 huge) / 1000000") MB/s), peak RSS max $(rss c4 huge) MiB (target < 64 MiB: $(met "$(bench_max < "$W/r-c4-huge") < 65536")); $MANY small files: median $(med c4 many) s, peak RSS max $(rss c4 many) MiB (target < 64 MiB: $(met "$(bench_max < "$W/r-c4-many") < 65536"))"
fi

# ---------------------------------------------------------------- 5. encrypted vs plain mirror
if [[ " $CASES " == *" 5 "* ]]; then
  warm "$V1"
  key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')   # a throwaway key, in $SHM only
  for r in $(seq 1 "$ROUNDS"); do
    for tool in $(order2 "$r" plain encrypted); do
      bench_fresh_fs; d=$FSM/c5; mkdir -p "$d"
      if [ $tool = plain ]; then conf "$SHM/c5.conf" "$SHM/c5-$tool.$r" "$d"
      else conf "$SHM/c5.conf" "$SHM/c5-$tool.$r" "$d" "encrypt_key = $key"; fi
      sync
      read -r s k < <(timed "$W/last.log" "$REP" replicate -c "$SHM/c5.conf" "$V1")
      check_ok "$W/last.log" 1
      record c5 "$tool" "$r" "$s" "$k"
      rm -f "$SHM/c5.conf"
    done
  done
  bench_fs_down
  mpl=$(med c5 plain); men=$(med c5 encrypted)
  sum "5. encrypted mirror (encrypt_key, AES-256-GCM) vs plain mirror of the same volume, medians of $ROUNDS: plain $mpl s (RSS $(rss c5 plain) MiB); encrypted $men s (RSS $(rss c5 encrypted) MiB); encrypted / plain = $(bench_calc "$men / $mpl")x (target <= 1.3x: $(met "$men / $mpl <= 1.3"))"
fi

say ""
say "== summary"
tee -a "$RES" < "$W/summary"
echo "results: $RES"
