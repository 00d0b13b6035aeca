# lib-bench.sh - helpers shared by the benchmark scripts (bench-extract.sh, bench-latency.sh,
# bench-replicate.sh); sourced after scripts/lab/lib.sh, not executed.

# bench_need_root NAME - both scripts run Bacula's daemons and time with /usr/bin/time.
bench_need_root() {
  [ "$(id -u)" = 0 ] || { echo "$1: run as root" >&2; exit 1; }
  [ -x /usr/bin/time ] || { echo "$1: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
}

# bench_ports BASE - export DIR_PORT FD_PORT SD_PORT FD2_PORT: the first four free ports
# at BASE, BASE+10, ... (so two benchmarks, or a benchmark and the fixtures, can coexist).
bench_ports() {
  local b i
  for i in $(seq 0 20); do
    b=$(($1 + 10 * i))
    if lab_port_free "$b" && lab_port_free $((b + 1)) && lab_port_free $((b + 2)) && lab_port_free $((b + 3)); then break; fi
  done
  export DIR_PORT=$b FD_PORT=$((b + 1)) SD_PORT=$((b + 2)) FD2_PORT=$((b + 3))
}

# bench_build REPO OUT - build replicad as OUT.
bench_build() { (cd "$1" && go build -o "$2" ./examples/replicad); }

# bench_tree DIR BIG_N BIG_MIB SMALL - the ~1 GiB benchmark tree (deterministic): BIG_N
# large files of BIG_MIB MiB in DIR/big, half random (incompressible, openssl aes-ctr of
# zeros), half text-like (compressible), and SMALL small files (exponential sizes, mean
# ~10 kB, 200 per directory) in DIR/small. Kept while DIR.done holds the same parameters.
bench_tree() {
  local T=$1 n=$2 mib=$3 small=$4 i
  local stamp="$n x $mib MiB + $small small"
  if [ -f "$T.done" ] && [ "$(cat "$T.done")" = "$stamp" ] && [ -d "$T" ]; then return 0; fi
  echo "== source tree: $n x $mib MiB + $small small files in $T"
  rm -rf "$T" "$T.done"; mkdir -p "$T/big" "$T/small"
  for i in $(seq 1 "$n"); do
    if [ $((i % 2)) = 1 ]; then
      bench_random_file "$T/big/random-$i.bin" $((mib << 20)) "bench$i"
    else
      python3 - "$T/big/text-$i.log" $((mib << 20)) <<'PY'
import random, sys
path, size = sys.argv[1], int(sys.argv[2])
r = random.Random(size)
words = ("backup restore volume catalog storage director client fileset pool job level full "
         "incremental differential media label session block record stream attribute").split()
lines = [("%06d %s\n" % (n, " ".join(r.choice(words) for _ in range(r.randint(4, 14))))).encode() for n in range(20000)]
chunk = b"".join(lines)
with open(path, "wb") as f:
    left = size
    while left > 0:
        f.write(chunk[:left]); left -= len(chunk)
PY
    fi
  done
  bench_small_files "$T/small" "$small" 10000 200 42
  echo "$stamp" > "$T.done"
}

# bench_random_file PATH BYTES SEED - BYTES of incompressible data (AES-256-CTR of zeros,
# keyed by SEED: deterministic, ~1 GB/s, not sparse).
bench_random_file() {
  openssl enc -aes-256-ctr -K "$(printf '%s' "$3" | sha256sum | cut -c1-64)" -iv 0 -nosalt -in /dev/zero 2>/dev/null |
    head -c "$2" > "$1" || true   # head closes the pipe: openssl's SIGPIPE is expected
  [ "$(stat -c %s "$1")" = "$2" ] || { echo "bench_random_file: $1 is short" >&2; return 1; }
}

# bench_small_files DIR N MEAN PERDIR SEED - N small files (exponential sizes of mean ~MEAN
# bytes, rounded up to whole repetitions of a short text) in subdirectories of PERDIR files.
bench_small_files() {
  python3 - "$@" <<'PY'
import os, random, sys
d, n, mean, per, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
r = random.Random(seed)
for i in range(n):
    sub = os.path.join(d, "d%03d" % (i // per))
    if i % per == 0:
        os.makedirs(sub, exist_ok=True)
    size = int(r.expovariate(1 / mean))
    with open(os.path.join(sub, "f%05d.dat" % i), "wb") as f:
        f.write((b"small file %d " % i) * (size // 14 + 1))
PY
}

# bench_vol_of WORKDIR JOBNAME - the (first) volume of the last job of that name.
bench_vol_of() {
  lab_sql "$1" "select m.VolumeName from JobMedia jm join Media m using(MediaId) join Job j using(JobId) where j.Name='$2' order by j.JobId desc, jm.JobMediaId limit 1"
}

# median / maximum of the numbers on stdin, one a line
bench_median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
bench_max() { sort -g | tail -1; }

# bench_calc EXPR - floating-point arithmetic (bc -l), printed with 2 decimals
bench_calc() { printf '%.2f' "$(echo "$1" | bc -l)"; }

# bench_free_port FROM - print the first port at or above FROM that nothing listens on.
bench_free_port() {
  local p=$1
  while ! lab_port_free "$p"; do p=$((p + 1)); done
  echo "$p"
}

# A fresh file system for every timed run that writes to the disk. Runs on the work dir's own
# file system were up to 3x slower after a deletion, and a wait did not always cure it: perf
# showed ext4_create spending most of the time in recently_deleted (ext4 skips inodes freed
# recently while it looks for a free one). So each run gets a new ext4, made over the same
# image file on that disk and mounted through a loop device with direct I/O: every run
# starts from the same state, and writes still go to the same disk. The image is written once
# (zeros, fsync), so that runs overwrite blocks already allocated: no allocation and no
# discard on the host's file system while they run.
#
# bench_fs_init IMG MIB MNT - make the image and the mount point
bench_fs_init() {
  local dev m
  BENCH_FS_IMG=$1 BENCH_FS_MNT=$3 BENCH_FS_DEV=
  mkdir -p "$3"
  # Left by a run that was killed: unmount and detach what still uses the image.
  for dev in $(losetup -n -O NAME -j "$1" 2>/dev/null); do
    for m in $(findmnt -n -o TARGET -S "$dev"); do umount "$m"; done
    losetup -d "$dev"
  done
  if [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" != $(( $2 << 20 )) ]; then
    echo "== fresh file systems: writing a $2 MiB image at $1"
    rm -f "$1"; dd if=/dev/zero of="$1" bs=1M count="$2" conv=fsync status=none
  fi
}
# bench_fresh_fs - BENCH_FS_MNT becomes a new, empty ext4 (made over the image)
bench_fresh_fs() {
  bench_fs_down
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$BENCH_FS_IMG"
  BENCH_FS_DEV=$(losetup --direct-io=on -f --show "$BENCH_FS_IMG")
  mount "$BENCH_FS_DEV" "$BENCH_FS_MNT"
  sync
}
# bench_fs_down - unmount it (writing everything back) and free the loop device
bench_fs_down() {
  if [ -n "${BENCH_FS_MNT:-}" ] && mountpoint -q "$BENCH_FS_MNT"; then umount "$BENCH_FS_MNT"; fi
  if [ -n "${BENCH_FS_DEV:-}" ]; then losetup -d "$BENCH_FS_DEV"; BENCH_FS_DEV=; fi
}

# bench_settle_disk DIR - sync, then wait (at most SETTLE_MAX s, default 300) until the disk
# holding DIR has written and discarded less than 10 MB/s for 3 s in a row: on a file system
# mounted with discard, a deletion's discards run in the background long after rm and sync
# return.
bench_settle_disk() {
  local st t=0 quiet=0 a b
  st=/sys/dev/block/$(mountpoint -d "$(findmnt -no TARGET -T "$1")")/stat
  sync
  [ -r "$st" ] || { sleep 10; return 0; }
  a=$(awk '{printf "%.0f\n", $7 + $14}' "$st")   # sectors written + sectors discarded
  while [ "$t" -lt "${SETTLE_MAX:-300}" ] && [ "$quiet" -lt 3 ]; do
    sleep 1; t=$((t + 1))
    b=$(awk '{printf "%.0f\n", $7 + $14}' "$st")
    if [ $((b - a)) -lt 20480 ]; then quiet=$((quiet + 1)); else quiet=0; fi
    a=$b
  done
  # ext4 does not reuse inodes freed in the last ~30 s: right after a mass deletion, creating
  # files spends most of its time looking for others (perf: ext4_create -> recently_deleted),
  # several times slower. Wait that out too (BENCH_INODE_WAIT s, default 35).
  sleep "${BENCH_INODE_WAIT:-35}"
  echo "   (disk settled after ${t} s, + ${BENCH_INODE_WAIT:-35} s for freed inodes)"
}
