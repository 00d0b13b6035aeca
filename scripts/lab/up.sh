#!/bin/bash
# up.sh WORKDIR - write Bacula configs into WORKDIR/etc, create the SQLite catalog (first
# time, or with FRESH=1), start bacula-sd, bacula-fd, bacula-dir on 127.0.0.1 (foreground
# mode, detached with setsid, pid files in WORKDIR/run) and wait until bconsole answers and
# the director reaches the SD and the FD. Run as root.
#
# Environment knobs (all optional):
#   SRC_ROOT=WORKDIR/src    every FileSet backs up SRC_ROOT/<tree> (trees: plain sparse
#                           aclxattr accurate tree), see the FileSet table below
#   DIR_PORT/FD_PORT/SD_PORT/FD2_PORT  19101/19102/19103/SD_PORT+1 (FD2 = 2nd file daemon)
#   FD2_NETWORK_BUFFER=4096 Maximum Network Buffer Size of the 2nd file daemon (client
#                           lab-fd2, jobs InterleaveA/B): its data records are at most this long
#   SPAN_VOLUME_BYTES=5M    Maximum Volume Bytes of pool Span (job Span spans volumes)
#   LAB_VOLUME_BYTES=0      Maximum Volume Bytes of pool Lab (0 = unlimited)
#   SMALL_BLOCK_SIZE=16384  Maximum Block Size of device SmallDev1 (storage Small1)
#   MULTI_BANDWIDTH=100kb/s Maximum Bandwidth of jobs InterleaveA/InterleaveB
#   FIFO_OPEN_WAIT=60       Maximum Open Wait (s) of the FIFO device
#   FRESH=1                 stop daemons, wipe catalog/volumes/logs of WORKDIR first
#   DEBUG=N                 start the daemons with -d N -dt
#   PLUGIN_DIR=/usr/lib/bacula  Plugin Directory of the SD (e.g. a directory holding
#                           brc-replica-sd.so; the FDs keep /usr/lib/bacula). The daemons
#                           inherit up.sh's environment (e.g. BRC_REPLICA_SOCKET)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
[ $# -ge 1 ] || { echo "usage: $0 WORKDIR" >&2; exit 2; }
W=$(lab_abs "$1")
SRC_ROOT=${SRC_ROOT:-$W/src}
SPAN_VOLUME_BYTES=${SPAN_VOLUME_BYTES:-5M}
LAB_VOLUME_BYTES=${LAB_VOLUME_BYTES:-0}
SMALL_BLOCK_SIZE=${SMALL_BLOCK_SIZE:-16384}
MULTI_BANDWIDTH=${MULTI_BANDWIDTH:-100kb/s}
FIFO_OPEN_WAIT=${FIFO_OPEN_WAIT:-60}
FD2_NETWORK_BUFFER=${FD2_NETWORK_BUFFER:-4096}
PLUGIN_DIR=${PLUGIN_DIR:-/usr/lib/bacula}

if [ "${FRESH:-0}" = 1 ]; then
  "$HERE/down.sh" "$W" >/dev/null 2>&1 || true
  rm -rf "$W/etc" "$W/working" "$W/volumes" "$W/volumes-small" "$W/fifo" "$W/fifo-out" "$W/log" "$W/run" "$W/bsr"
fi
for d in $LAB_DAEMONS; do
  if lab_pid "$W" "$d" >/dev/null; then echo "up.sh: bacula-$d already running in $W (run down.sh first)" >&2; exit 1; fi
done
for p in "$DIR_PORT" "$FD_PORT" "$SD_PORT" "$FD2_PORT"; do
  lab_port_free "$p" || { echo "up.sh: port 127.0.0.1:$p is in use (set DIR_PORT/FD_PORT/SD_PORT/FD2_PORT)" >&2; exit 1; }
done

mkdir -p "$W"/{etc,working/dir,working/sd,working/fd,working/fd2,volumes,volumes-small,fifo,fifo-out,log,run,bsr}
[ -p "$W/fifo/fifo1" ] || { rm -f "$W/fifo/fifo1"; mkfifo -m 600 "$W/fifo/fifo1"; }
chmod 700 "$W/etc" "$W/working"

# Passwords only guard loopback daemons of a throw-away lab.
PW_DIR=lab-dir-password PW_FD=lab-fd-password PW_SD=lab-sd-password

# ---------------------------------------------------------------- bacula-dir.conf
{
cat <<CONF
Director {
  Name = lab-dir
  DirAddresses = { ip = { addr = 127.0.0.1; port = $DIR_PORT; } }
  QueryFile = "/etc/bacula/scripts/query.sql"
  WorkingDirectory = "$W/working/dir"
  PidDirectory = "$W/run"
  Maximum Concurrent Jobs = 10
  Password = "$PW_DIR"
  Messages = Daemon
}
Catalog {
  Name = LabCatalog
  # SQLite: the file is WorkingDirectory/<dbname>.db = $W/working/dir/bacula.db
  dbname = "bacula"; dbuser = ""; dbpassword = ""
}
Client {
  Name = lab-fd
  Address = 127.0.0.1
  FDPort = $FD_PORT
  Catalog = LabCatalog
  Password = "$PW_FD"
  File Retention = 10 years
  Job Retention = 10 years
  AutoPrune = no
  Maximum Concurrent Jobs = 10
}
# Same machine, second file daemon with small network buffers (data records <= $FD2_NETWORK_BUFFER bytes);
# bandwidth-limited jobs on it send a smooth stream of small records, so that two of them
# running at once alternate block by block in a shared volume
Client {
  Name = lab-fd2
  Address = 127.0.0.1
  FDPort = $FD2_PORT
  Catalog = LabCatalog
  Password = "$PW_FD"
  File Retention = 10 years
  Job Retention = 10 years
  AutoPrune = no
  Maximum Concurrent Jobs = 10
}
# File device, default block size (64512), directory $W/volumes
Storage {
  Name = File1
  Address = 127.0.0.1
  SDPort = $SD_PORT
  Password = "$PW_SD"
  Device = FileDev1
  Media Type = File1
  Maximum Concurrent Jobs = 10
}
# File device with Maximum Block Size = $SMALL_BLOCK_SIZE, directory $W/volumes-small
Storage {
  Name = Small1
  Address = 127.0.0.1
  SDPort = $SD_PORT
  Password = "$PW_SD"
  Device = SmallDev1
  Media Type = Small1
  Maximum Concurrent Jobs = 10
}
# FIFO device $W/fifo/fifo1 (backup.sh drains it into $W/fifo-out)
Storage {
  Name = Fifo1
  Address = 127.0.0.1
  SDPort = $SD_PORT
  Password = "$PW_SD"
  Device = FifoDev1
  Media Type = Fifo1
  Maximum Concurrent Jobs = 1
}
# One job per volume (Lab-0001, ... unless pre-labelled with label.sh)
Pool {
  Name = Lab
  Pool Type = Backup
  Storage = File1
  Label Format = "Lab-"
  Maximum Volume Jobs = 1
  Maximum Volume Bytes = $LAB_VOLUME_BYTES
  Volume Retention = 10 years
  AutoPrune = no
  Recycle = no
}
# One job per volume on the small-block device
Pool {
  Name = Small
  Pool Type = Backup
  Storage = Small1
  Label Format = "Small-"
  Maximum Volume Jobs = 1
  Volume Retention = 10 years
  AutoPrune = no
  Recycle = no
}
# Several (concurrent) jobs in the same volume, small-block device
Pool {
  Name = Multi
  Pool Type = Backup
  Storage = Small1
  Label Format = "Multi-"
  Volume Retention = 10 years
  AutoPrune = no
  Recycle = no
}
# Small volumes -> a job spans several volumes
Pool {
  Name = Span
  Pool Type = Backup
  Storage = File1
  Label Format = "Span-"
  Maximum Volume Bytes = $SPAN_VOLUME_BYTES
  Volume Retention = 10 years
  AutoPrune = no
  Recycle = no
}
Pool {
  Name = Fifo
  Pool Type = Backup
  Storage = Fifo1
  Label Format = "Fifo-"
  Maximum Volume Jobs = 1
  Volume Retention = 10 years
  AutoPrune = no
  Recycle = no
}
Messages {
  Name = Standard
  console = all, !skipped, !saved
  append = "$W/log/bacula.log" = all, !skipped
  catalog = all, !skipped
}
Messages {
  Name = Daemon
  console = all, !skipped, !saved
  append = "$W/log/bacula.log" = all, !skipped
}
JobDefs {
  Name = LabDefaults
  Type = Backup
  Level = Full
  Client = lab-fd
  Storage = File1
  Pool = Lab
  Messages = Standard
  Priority = 10
  Write Bootstrap = "$W/bsr/%n-%i.bsr"
  Maximum Concurrent Jobs = 5
  Allow Duplicate Jobs = yes
}
CONF
# FileSets: NAME|TREE|Options (';'-separated, empty = no Options block)|extra Job directives|comment
# FileSet FS-NAME backs up SRC_ROOT/TREE; job NAME uses it (JobDefs LabDefaults: File1, pool Lab).
while IFS='|' read -r name tree opts jobextra comment; do
  [ -n "$name" ] || continue
  echo "# $name: $comment"
  echo "FileSet {"
  echo "  Name = \"FS-$name\""
  echo "  Include {"
  if [ -n "$opts" ]; then
    echo "    Options {"
    printf '%s\n' "$opts" | tr ';' '\n' | sed '/^ *$/d; s/^ */      /'
    echo "    }"
  fi
  echo "    File = \"$SRC_ROOT/$tree\""
  echo "  }"
  echo "}"
  echo "Job { Name = \"$name\"; JobDefs = LabDefaults; FileSet = \"FS-$name\"; $jobextra }"
done <<'SETS'
PlainMD5|plain|signature = MD5||no compression, MD5 digests
PlainNoSig|plain|||Bacula defaults (no Options block): no compression, no digest
GzipSHA1|plain|compression = GZIP; signature = SHA1||zlib (GZIP = level 6) + SHA1
LzoMD5|plain|compression = LZO; signature = MD5||LZO (lzo1x) + MD5
SparseMD5|sparse|sparse = yes; signature = MD5||sparse data streams + MD5
SparseGzip|sparse|sparse = yes; compression = GZIP; signature = SHA256||sparse + GZIP + SHA256
SparseLzo|sparse|sparse = yes; compression = LZO; signature = SHA512||sparse + LZO + SHA512
AclXattr|aclxattr|aclsupport = yes; xattrsupport = yes; signature = MD5||POSIX ACL + xattr streams
Accurate|accurate|signature = MD5|Accurate = yes;|Accurate mode: Incremental/Differential write deleted-file records
TreeMD5|tree|signature = MD5||integration tree (make-tree.sh), MD5
TreeGzip|tree|compression = GZIP; signature = SHA1||integration tree, GZIP + SHA1
TreeLzo|tree|compression = LZO; signature = MD5||integration tree, LZO + MD5
TreeAll|tree|compression = GZIP; signature = SHA1; sparse = yes; aclsupport = yes; xattrsupport = yes||integration tree, everything at once
TreeAccurate|tree|signature = MD5; aclsupport = yes; xattrsupport = yes|Accurate = yes;|integration tree, Accurate mode
SETS
cat <<CONF
# Jobs on other devices/pools, reusing the FileSets above
Job { Name = "SmallBlock"; JobDefs = LabDefaults; FileSet = "FS-PlainMD5"; Storage = Small1; Pool = Small; }
Job { Name = "Span"; JobDefs = LabDefaults; FileSet = "FS-PlainMD5"; Pool = Span; }
Job { Name = "FifoJob"; JobDefs = LabDefaults; FileSet = "FS-PlainMD5"; Storage = Fifo1; Pool = Fifo; }
# Started together, these two interleave their blocks in one volume (pool Multi, small blocks)
Job { Name = "InterleaveA"; JobDefs = LabDefaults; FileSet = "FS-PlainMD5"; Client = lab-fd2; Storage = Small1; Pool = Multi; Maximum Bandwidth = $MULTI_BANDWIDTH; }
Job { Name = "InterleaveB"; JobDefs = LabDefaults; FileSet = "FS-PlainNoSig"; Client = lab-fd2; Storage = Small1; Pool = Multi; Maximum Bandwidth = $MULTI_BANDWIDTH; }
Job { Name = "TreeSpan"; JobDefs = LabDefaults; FileSet = "FS-TreeMD5"; Pool = Span; }
# Restores through the director/FD (restore.sh); bextract cannot restore ACL/xattr streams
Job {
  Name = "RestoreFiles"
  Type = Restore
  Client = lab-fd
  Storage = File1
  FileSet = "FS-PlainMD5"
  Pool = Lab
  Messages = Standard
  Where = "$W/restore-dir"
  Replace = Always
}
CONF
} > "$W/etc/bacula-dir.conf"

# ---------------------------------------------------------------- bacula-sd.conf
cat > "$W/etc/bacula-sd.conf" <<CONF
Storage {
  Name = lab-sd
  SDAddresses = { ip = { addr = 127.0.0.1; port = $SD_PORT; } }
  WorkingDirectory = "$W/working/sd"
  Pid Directory = "$W/run"
  Plugin Directory = "$PLUGIN_DIR"
  Maximum Concurrent Jobs = 20
}
Director {
  Name = lab-dir
  Password = "$PW_SD"
}
Device {
  Name = FileDev1
  Media Type = File1
  Device Type = File
  Archive Device = "$W/volumes"
  LabelMedia = yes
  Random Access = yes
  AutomaticMount = yes
  RemovableMedia = no
  AlwaysOpen = no
  Maximum Concurrent Jobs = 5
}
Device {
  Name = SmallDev1
  Media Type = Small1
  Device Type = File
  Archive Device = "$W/volumes-small"
  Maximum Block Size = $SMALL_BLOCK_SIZE
  LabelMedia = yes
  Random Access = yes
  AutomaticMount = yes
  RemovableMedia = no
  AlwaysOpen = no
  Maximum Concurrent Jobs = 5
}
Device {
  Name = FifoDev1
  Media Type = Fifo1
  Device Type = Fifo
  Archive Device = "$W/fifo/fifo1"
  LabelMedia = yes
  Random Access = no
  AutomaticMount = yes
  RemovableMedia = no
  AlwaysOpen = no
  Requires Mount = no
  Maximum Open Wait = $FIFO_OPEN_WAIT
  Maximum Concurrent Jobs = 1
}
Messages {
  Name = Standard
  director = lab-dir = all
}
CONF

# ---------------------------------------------------------------- bacula-fd.conf
cat > "$W/etc/bacula-fd.conf" <<CONF
FileDaemon {
  Name = lab-fd
  FDAddresses = { ip = { addr = 127.0.0.1; port = $FD_PORT; } }
  WorkingDirectory = "$W/working/fd"
  Pid Directory = "$W/run"
  Plugin Directory = "/usr/lib/bacula"
  Maximum Concurrent Jobs = 20
}
Director {
  Name = lab-dir
  Password = "$PW_FD"
}
Messages {
  Name = Standard
  director = lab-dir = all, !skipped, !restored
}
CONF

sed -e "s/Name = lab-fd\$/Name = lab-fd2/" -e "s/port = $FD_PORT;/port = $FD2_PORT;/" -e "s|$W/working/fd\"|$W/working/fd2\"|" \
    -e "s|^  Maximum Concurrent Jobs = 20|  Maximum Concurrent Jobs = 20\n  Maximum Network Buffer Size = $FD2_NETWORK_BUFFER|" \
    "$W/etc/bacula-fd.conf" > "$W/etc/bacula-fd2.conf"

# ---------------------------------------------------------------- bconsole.conf
cat > "$W/etc/bconsole.conf" <<CONF
Director {
  Name = lab-dir
  DIRport = $DIR_PORT
  Address = 127.0.0.1
  Password = "$PW_DIR"
}
CONF
chmod 600 "$W"/etc/*.conf

# ---------------------------------------------------------------- SQLite catalog
DB="$W/working/dir/bacula.db"
if [ ! -s "$DB" ]; then
  MK=/usr/share/bacula-director/make_sqlite3_tables
  [ -r "$MK" ] || { echo "up.sh: $MK not found (run install.sh)" >&2; exit 1; }
  # The packaged script does 'cd /var/lib/bacula' and has an unsubstituted XXX_DBNAME_XXX.
  sed -e "s|^cd /var/lib/bacula|cd \"$W/working/dir\"|" -e 's|XXX_DBNAME_XXX|bacula|' "$MK" > "$W/working/dir/make_sqlite3_tables.sh"
  sh "$W/working/dir/make_sqlite3_tables.sh"
  echo "up.sh: catalog created: $DB (schema version $(lab_sql "$W" 'select VersionId from Version'))"
fi

# ---------------------------------------------------------------- config check + start
for d in $LAB_DAEMONS; do
  "$LAB_BIN/bacula-${d%2}" -t -c "$W/etc/bacula-$d.conf" >"$W/log/bacula-$d.test" 2>&1 || {
    cat "$W/log/bacula-$d.test" >&2; echo "up.sh: bacula-$d -t failed" >&2; exit 1; }
done
for d in $LAB_DAEMONS; do
  # -f: stay in the foreground (we background it ourselves and keep its pid); runs as root.
  setsid nohup "$LAB_BIN/bacula-${d%2}" -f -c "$W/etc/bacula-$d.conf" ${DEBUG:+-d "$DEBUG" -dt} \
      </dev/null >>"$W/log/bacula-$d.out" 2>&1 &
  echo $! > "$W/run/$d.pid"
done

ok=0
for i in $(seq 1 60); do
  for d in $LAB_DAEMONS; do
    # Right after the fork the pid may still show nohup's command line:
    # only a process that is gone, or still not the daemon after 5 s, died.
    lab_pid "$W" "$d" >/dev/null || { kill -0 "$(cat "$W/run/$d.pid")" 2>/dev/null && [ "$i" -le 10 ]; } ||
      { echo "up.sh: bacula-$d died; see $W/log/bacula-$d.out" >&2; tail -20 "$W/log/bacula-$d.out" >&2; "$HERE/down.sh" "$W"; exit 1; }
  done
  if out=$(printf 'status director\n' | bcon "$W" 10 2>&1) && grep -q 'lab-dir Version' <<<"$out"; then ok=1; break; fi
  sleep 0.5
done
[ "$ok" = 1 ] || { echo "up.sh: director does not answer" >&2; "$HERE/down.sh" "$W"; exit 1; }
chk=$(printf 'status storage=File1\nstatus client=lab-fd\nstatus client=lab-fd2\n' | bcon "$W" 30 2>&1)
grep -q 'lab-sd Version' <<<"$chk" && grep -q 'lab-fd Version' <<<"$chk" && grep -q 'lab-fd2 Version' <<<"$chk" || { echo "$chk" >&2; echo "up.sh: SD/FD not reachable" >&2; "$HERE/down.sh" "$W"; exit 1; }
echo "up.sh: lab up in $W  (dir 127.0.0.1:$DIR_PORT fd :$FD_PORT sd :$SD_PORT fd2 :$FD2_PORT)  SRC_ROOT=$SRC_ROOT"
grep -m1 'lab-dir Version:' <<<"$out" | sed 's/^/  /'
for d in $LAB_DAEMONS; do echo "  $d (bacula-${d%2}) pid $(cat "$W/run/$d.pid")"; done
