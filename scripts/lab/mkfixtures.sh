#!/bin/bash
# mkfixtures.sh [OUTDIR] - (re)generate the committed Bacula fixture volumes.
#   OUTDIR defaults to <repo>/bacularec/testdata. Run as root (install.sh first).
#   Starts a fresh lab (up.sh) in a temp WORKDIR on free loopback ports, builds the small
#   deterministic source trees (fixture-tree.sh) under /tmp/brc-fixture-src/<tree>, runs
#   one job per fixture, stops the lab, copies the volumes to OUTDIR as
#   bacula-<version>-<fixture>.vol (the names are also the labels inside), and writes:
#     OUTDIR/MANIFEST.md, MANIFEST.tsv  provenance of every volume
#     OUTDIR/trees/<tree>.tsv           source-tree manifests (tree-manifest.py)
#     OUTDIR/bls/                       golden bls outputs (-j, file list, -v, -k -v, -k -vv)
#     OUTDIR/catalog/                   Job/JobMedia/Media rows and the File table (LStat, digest)
#     OUTDIR/bsr/                       bootstrap files written by the jobs
#     OUTDIR/config/                    the lab's bacula-dir/sd/fd.conf (WORKDIR path replaced)
#   Every volume is then restored with bextract (extract.sh) and compared with its tree
#   manifest (content, type, mode, owner, mtime, hard links, link targets, rdev; not
#   xattrs/ACLs, which bextract 9.6.7 drops); the aclxattr job and the accurate chains
#   (Full+Incr, Full+Diff) are also restored through the director/FD (restore.sh) and
#   compared including xattrs/ACLs and deletions. Exit 0 only if all fixtures were made and
#   verified. OUTDIR is only updated at the end, when everything succeeded.
#   Leaves nothing running (trap). Env: PORT_BASE (19211; the first free base+0..3 is used),
#   KEEP_WORKDIR=1, KEEP_SRC=1, SPAN_VOLUME_BYTES (200000), MULTI_BANDWIDTH (5kb/s).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
REPO=$(cd "$HERE/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "mkfixtures.sh: must run as root" >&2; exit 1; }
for b in bacula-dir bacula-sd bacula-fd bconsole bls bextract; do
  [ -x "$LAB_BIN/$b" ] || { echo "mkfixtures.sh: $LAB_BIN/$b missing (run install.sh)" >&2; exit 1; }
done
OUT=$(lab_abs "${1:-$REPO/bacularec/testdata}")
SRC_ROOT=/tmp/brc-fixture-src          # absolute paths recorded in the volumes
VER=$( { "$LAB_BIN/bacula-dir" -? 2>&1 || true; } | sed -n "s/^Version: \([0-9.]*\).*/\1/p" | head -1)
[ -n "$VER" ] || { echo "mkfixtures.sh: cannot tell the Bacula version" >&2; exit 1; }
PKGVER=$(dpkg-query -W -f='${Version}' bacula-sd 2>/dev/null || echo '?')
P="bacula-$VER"
SPAN_VOLUME_BYTES=${SPAN_VOLUME_BYTES:-200000}
MULTI_BANDWIDTH=${MULTI_BANDWIDTH:-5kb/s}
FD2_NETWORK_BUFFER=4096
SMALL_BLOCK_SIZE=16384

exec 9>"$SRC_ROOT.lock"
flock -n 9 || { echo "mkfixtures.sh: another mkfixtures.sh holds $SRC_ROOT.lock" >&2; exit 1; }
W=$(mktemp -d /tmp/brc-fixture-lab.XXXXXX)
S=$W/staging; mkdir -p "$S"/{trees,bls,bsr,config,catalog}
cleanup() {
  local rc=$?
  "$HERE/down.sh" "$W" >/dev/null 2>&1 || true
  if [ "${KEEP_WORKDIR:-0}" = 1 ]; then echo "mkfixtures.sh: WORKDIR kept: $W"; else rm -rf "$W"; fi
  [ "${KEEP_SRC:-0}" = 1 ] || rm -rf "$SRC_ROOT"
  [ "$rc" = 0 ] || echo "mkfixtures.sh: FAILED (rc=$rc)" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

base=${PORT_BASE:-19211}
for i in $(seq 0 20); do
  b=$((base + 10 * i))
  if lab_port_free "$b" && lab_port_free $((b + 1)) && lab_port_free $((b + 2)) && lab_port_free $((b + 3)); then break; fi
  b=""
done
[ -n "$b" ] || { echo "mkfixtures.sh: no free ports from $base" >&2; exit 1; }
export DIR_PORT=$b FD_PORT=$((b + 1)) SD_PORT=$((b + 2)) FD2_PORT=$((b + 3))

step() { printf '\n===== %s\n' "$*"; }
die() { echo "mkfixtures.sh: $*" >&2; exit 1; }
REC=$W/fixtures.tsv; : > "$REC"
# rec VOLUME FIXTURE JOBS TREES STORAGE POOL COMMAND NOTES
rec() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$REC"; }
vols_of() { lab_sql "$W" "select m.VolumeName from JobMedia jm join Media m on m.MediaId=jm.MediaId where jm.JobId=$1 group by m.VolumeName order by min(jm.JobMediaId)" | paste -sd' '; }
manifest() { "$LAB_PY" "$HERE/tree-manifest.py" "$SRC_ROOT/$1" > "$S/trees/$2.tsv"; echo "manifest trees/$2.tsv: $(($(wc -l < "$S/trees/$2.tsv") - 1)) entries"; }
runjob() {  # JOB LEVEL EXPECTED_VOLUMES... -> JOBID
  "$HERE/backup.sh" "$W" "$1" "$2" | sed 's/^/  /'
  JOBID=$(cat "$W/run/jobid.$1")
  local got; got=$(vols_of "$JOBID"); shift 2
  [ "$got" = "$*" ] || die "job $JOBID wrote to volumes [$got], expected [$*]"
}

step "source trees in $SRC_ROOT"
mkdir -p "$SRC_ROOT"
for t in plain sparse aclxattr accurate; do "$HERE/fixture-tree.sh" "$t" "$SRC_ROOT/$t" 1; done
manifest plain plain; manifest sparse sparse; manifest aclxattr aclxattr; manifest accurate accurate-1

step "lab up in $W (ports $DIR_PORT-$FD2_PORT)"
SRC_ROOT=$SRC_ROOT SPAN_VOLUME_BYTES=$SPAN_VOLUME_BYTES SMALL_BLOCK_SIZE=$SMALL_BLOCK_SIZE \
  MULTI_BANDWIDTH=$MULTI_BANDWIDTH FD2_NETWORK_BUFFER=$FD2_NETWORK_BUFFER FRESH=1 "$HERE/up.sh" "$W" | grep -v '^WARNING\|^$' | tail -5

# one job per volume, pre-labelled with its final name
simple() {  # FIXTURE POOL JOB TREE STORAGE
  local v="$P-$1.vol"
  step "$v: job $3 (pool $2, tree $4)"
  "$HERE/label.sh" "$W" "$2" "$v" | sed 's/^/  /'
  runjob "$3" Full "$v"
  rec "$v" "$1" "$3:$JOBID:Full" "$4" "$5" "$2" "label.sh WORKDIR $2 $v && backup.sh WORKDIR $3 Full" ""
}
simple plain-md5          Lab   PlainMD5   plain    File1
simple gzip-sha1          Lab   GzipSHA1   plain    File1
simple lzo-md5            Lab   LzoMD5     plain    File1
simple sparse-md5         Lab   SparseMD5  sparse   File1
simple sparse-gzip-sha256 Lab   SparseGzip sparse   File1
simple sparse-lzo-sha512  Lab   SparseLzo  sparse   File1
simple aclxattr-md5       Lab   AclXattr   aclxattr File1
simple smallblock-16k-md5 Small SmallBlock plain    Small1
simple fifo-md5           Fifo  FifoJob    plain    Fifo1

step "span: one job over two volumes (pool Span, Maximum Volume Bytes = $SPAN_VOLUME_BYTES)"
"$HERE/label.sh" "$W" Span "$P-span.1.vol" "$P-span.2.vol" | sed 's/^/  /'
runjob Span Full "$P-span.1.vol" "$P-span.2.vol"
for v in "$P-span.1.vol" "$P-span.2.vol"; do
  rec "$v" span "Span:$JOBID:Full" plain File1 Span "label.sh WORKDIR Span $P-span.1.vol $P-span.2.vol && backup.sh WORKDIR Span Full" ""
done

step "interleave: InterleaveA + InterleaveB started together into one volume (pool Multi, $SMALL_BLOCK_SIZE-byte blocks, $MULTI_BANDWIDTH each, client lab-fd2 with $FD2_NETWORK_BUFFER-byte network buffers)"
v="$P-interleave-2jobs.vol"
"$HERE/label.sh" "$W" Multi "$v" | sed 's/^/  /'
"$HERE/backup.sh" "$W" InterleaveA Full > "$W/log/interleaveA.out" 2>&1 & pa=$!
"$HERE/backup.sh" "$W" InterleaveB Full > "$W/log/interleaveB.out" 2>&1 & pb=$!
ra=0; rb=0; wait $pa || ra=$?; wait $pb || rb=$?
sed 's/^/  /' "$W/log/interleaveA.out" "$W/log/interleaveB.out"
[ $ra = 0 ] && [ $rb = 0 ] || die "interleave jobs failed"
ja=$(cat "$W/run/jobid.InterleaveA"); jb=$(cat "$W/run/jobid.InterleaveB")
[ "$(vols_of "$ja")" = "$v" ] && [ "$(vols_of "$jb")" = "$v" ] || die "interleave jobs not in $v"
rec "$v" interleave-2jobs "InterleaveA:$ja:Full InterleaveB:$jb:Full" "plain plain" Small1 Multi \
  "label.sh WORKDIR Multi $v && (backup.sh WORKDIR InterleaveA Full & backup.sh WORKDIR InterleaveB Full & wait)" ""

step "accurate chain: Full, Incremental (stage 2), Differential (stage 3), one volume each"
v1="$P-accurate-1-full.vol"; v2="$P-accurate-2-incr.vol"; v3="$P-accurate-3-diff.vol"
"$HERE/label.sh" "$W" Lab "$v1" | sed 's/^/  /'
runjob Accurate Full "$v1"; j1=$JOBID
sleep 2; "$HERE/fixture-tree.sh" accurate "$SRC_ROOT/accurate" 2; manifest accurate accurate-2; sleep 1
"$HERE/label.sh" "$W" Lab "$v2" | sed 's/^/  /'
runjob Accurate Incremental "$v2"; j2=$JOBID
sleep 2; "$HERE/fixture-tree.sh" accurate "$SRC_ROOT/accurate" 3; manifest accurate accurate-3; sleep 1
"$HERE/label.sh" "$W" Lab "$v3" | sed 's/^/  /'
runjob Accurate Differential "$v3"; j3=$JOBID
rec "$v1" accurate-1-full "Accurate:$j1:Full" accurate-1 File1 Lab "fixture-tree.sh accurate SRC 1; label.sh WORKDIR Lab $v1 && backup.sh WORKDIR Accurate Full" ""
rec "$v2" accurate-2-incr "Accurate:$j2:Incremental" accurate-2 File1 Lab "fixture-tree.sh accurate SRC 2; label.sh WORKDIR Lab $v2 && backup.sh WORKDIR Accurate Incremental" ""
rec "$v3" accurate-3-diff "Accurate:$j3:Differential" accurate-3 File1 Lab "fixture-tree.sh accurate SRC 3; label.sh WORKDIR Lab $v3 && backup.sh WORKDIR Accurate Differential" ""

step "director restores (the FD restores ACLs/xattrs and honours deleted-file records)"
VER_TSV=$W/verify.tsv; : > "$VER_TSV"
dverify() {  # NAME JOBIDS MANIFEST TREE [compare opts]
  local name=$1 ids=$2 man=$3 tree=$4; shift 4
  local o="$W/restore-dir/$name" c rc=0
  "$HERE/restore.sh" "$W" "$o" "$ids" | sed 's/^/  /'
  c=$("$LAB_PY" "$HERE/tree-manifest.py" "$o$SRC_ROOT/$tree" --compare "$S/trees/$man.tsv" "$@") || rc=$?
  echo "$c"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$([ $rc = 0 ] && echo OK || echo DIFF)" "$man" "director restore of JobIds $ids" "-" "${*:--}" >> "$VER_TSV"
  [ $rc = 0 ] || die "director restore $name: differences"
}
# the aclxattr tree is compared in full (xattrs and ACLs included); directory mtimes of the
# accurate chains are "now" where later jobs restored files into them
dverify aclxattr-md5-director "$(cat "$W/run/jobid.AclXattr")" aclxattr aclxattr
dverify accurate-full+incr-director "$j1,$j2" accurate-2 accurate --no-dir-mtime
dverify accurate-full+diff-director "$j1,$j3" accurate-3 accurate --no-dir-mtime

step "catalog check: no other volumes"
extra=$(lab_sql "$W" "select VolumeName from Media where VolumeName not like '$P-%'")
[ -z "$extra" ] || die "unexpected volumes in the catalog: $extra"
"$HERE/down.sh" "$W" | sed 's/^/  /'

step "collect into staging"
while IFS=$'\t' read -r vol fx jobs trees st pool cmd notes; do
  case "$st" in File1) src="$W/volumes/$vol";; Small1) src="$W/volumes-small/$vol";; Fifo1) src="$W/fifo-out/$vol";; esac
  cp "$src" "$S/$vol"; chmod 0644 "$S/$vol"
done < "$REC"
for f in "$W"/bsr/*.bsr; do cp "$f" "$S/bsr/"; done
for c in bacula-dir bacula-sd bacula-fd bacula-fd2; do sed "s|$W|WORKDIR|g" "$W/etc/$c.conf" > "$S/config/$c.conf"; done
sed "s|$W|WORKDIR|g" "$W/log/bacula.log" > "$S/catalog/bacula-jobs.log"

step "golden bls outputs"
BLSTMP=$W/blsconf; conf=$(lab_tool_sdconf "$S" "$BLSTMP")
gbls() {  # OUTFILE VOLS OPTS...
  local o=$1 v=$2; shift 2
  "$LAB_BIN/bls" -c "$conf" -V "$v" "$@" LabVolumes </dev/null > "$W/bls.tmp" 2>&1 || true
  # stable text: the staging dir is shown as "testdata", heap addresses of -vv dumps as 0x0
  sed -e "s|$S|testdata|g" -e "s|$BLSTMP|BLSCONF|g" -e 's/Dump block  *[0-9a-f]*:/Dump block 0x0:/' "$W/bls.tmp" > "$S/bls/$o"
}
while IFS=$'\t' read -r vol fx rest; do
  gbls "$vol.jobs.txt" "$vol" -j
  gbls "$vol.files.txt" "$vol"
  gbls "$vol.verbose.txt" "$vol" -v
  gbls "$vol.blocks.txt" "$vol" -k -v
  gbls "$vol.blockrecs.txt" "$vol" -k -vv
done < "$REC"
sv="$P-span.1.vol|$P-span.2.vol"
gbls "$P-span.1+2.jobs.txt" "$sv" -j
gbls "$P-span.1+2.files.txt" "$sv"
gbls "$P-span.1+2.blocks.txt" "$sv" -k -v

step "fixture properties"
# interleave: runs of consecutive blocks of the same session (block header SessId)
runs=$(grep -o '^Blk=[0-9]* blen=[0-9]* bVer=[0-9]* SessId=[0-9]*' "$S/bls/$P-interleave-2jobs.vol.blockrecs.txt" | sed 1d | awk '{print $4}' | uniq | wc -l)
blocks=$(grep -c '^Blk=' "$S/bls/$P-interleave-2jobs.vol.blockrecs.txt")
echo "interleave: $blocks blocks (incl. label block), $runs runs of same-session blocks"
[ "$runs" -ge 10 ] || die "interleave: only $runs runs of same-session blocks (jobs did not overlap enough)"
# span: the first record of the first data block of the 2nd volume
cont=$(awk '/^Blk=/{n++} n==2 && /Rec:/{print; exit}' "$S/bls/$P-span.2.vol.blockrecs.txt" | sed 's/.*Rec: //')
echo "span.2 first data record: $cont"
grep -q 'Strm=cont' <<<"$cont" || die "span.2 does not start with a continuation record"
# deleted-file records
ndel2=$(grep -c -- '-\*DELETED-' "$S/bls/$P-accurate-2-incr.vol.files.txt" || true)
ndel3=$(grep -c -- '-\*DELETED-' "$S/bls/$P-accurate-3-diff.vol.files.txt" || true)
echo "deleted records: incr $ndel2, diff $ndel3"
[ "$ndel2" -gt 0 ] && [ "$ndel3" -gt 0 ] || die "accurate Incremental/Differential without deleted-file records"
# small blocks: max block length
maxblk=$(grep -o '^Blk=[0-9]* blen=[0-9]*' "$S/bls/$P-smallblock-16k-md5.vol.blockrecs.txt" | sed 's/.*blen=//' | sort -n | tail -1)
echo "smallblock: largest block $maxblk bytes"
[ "$maxblk" -le "$SMALL_BLOCK_SIZE" ] || die "smallblock: block of $maxblk bytes"
printf 'interleave_runs\t%s\ninterleave_blocks\t%s\nspan2_first_record\t%s\ndeleted_incr\t%s\ndeleted_diff\t%s\nsmallblock_max\t%s\n' \
  "$runs" "$blocks" "$cont" "$ndel2" "$ndel3" "$maxblk" > "$W/props.tsv"

step "verify: bextract every volume and compare with its tree manifest"
verify() {  # NAME MANIFEST TREE VOLS [compare opts] ; env BSR
  local name=$1 man=$2 tree=$3 vols=$4; shift 4
  local o="$W/restore/$name"; rm -rf "$o"
  if ! "$HERE/extract.sh" "$S" "$o" $vols > "$W/log/bextract-$name.log" 2>&1; then
    tail -5 "$W/log/bextract-$name.log"; die "bextract $name failed"
  fi
  local nres; nres=$(grep -o '[0-9]* files restored' "$W/log/bextract-$name.log" | tail -1 || true)
  local unk; unk=$(grep -o 'Unknown stream=[0-9]*' "$W/log/bextract-$name.log" | sort | uniq -c | awk '{printf "%s%s x%s", sep, $3, $1; sep=", "}' || true)
  local c rc=0
  c=$("$LAB_PY" "$HERE/tree-manifest.py" "$o$SRC_ROOT/$tree" --compare "$S/trees/$man.tsv" --ignore xattrs,acl,defacl "$@") || rc=$?
  echo "$c"
  echo "  $name: $nres${unk:+; bextract ignored: $unk}"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$([ $rc = 0 ] && echo OK || echo DIFF)" "$man" "$nres" "$unk" "${BSR:+bsr=$(basename "$BSR")}" >> "$VER_TSV"
  [ $rc = 0 ] || die "verify $name: differences"
}
while IFS=$'\t' read -r vol fx jobs trees st pool cmd notes; do
  case "$fx" in
    span|interleave-2jobs|accurate-*) ;;
    *) verify "$fx" "${trees%% *}" "${trees%% *}" "$vol" ;;
  esac
done < "$REC"
verify span plain plain "$P-span.1.vol $P-span.2.vol"
BSR="$S/bsr/InterleaveA-$ja.bsr" verify interleave-A plain plain "$P-interleave-2jobs.vol"
BSR="$S/bsr/InterleaveB-$jb.bsr" verify interleave-B plain plain "$P-interleave-2jobs.vol"
verify accurate-1-full accurate-1 accurate "$v1"
verify accurate-2-incr accurate-2 accurate "$v2" --subset
verify accurate-3-diff accurate-3 accurate "$v3" --subset

step "MANIFEST"
"$LAB_PY" "$HERE/mkmanifest.py" --workdir "$W" --staging "$S" --fixtures "$REC" --verify "$VER_TSV" \
  --props "$W/props.tsv" --version "$VER" --pkgversion "$PKGVER" --src-root "$SRC_ROOT" \
  --span-bytes "$SPAN_VOLUME_BYTES" --small-block "$SMALL_BLOCK_SIZE" --bandwidth "$MULTI_BANDWIDTH" \
  --fd2-buffer "$FD2_NETWORK_BUFFER"

step "install into $OUT"
rm -f "$OUT"/bacula-*.vol "$OUT"/MANIFEST.md "$OUT"/MANIFEST.tsv
rm -rf "$OUT"/trees "$OUT"/bls "$OUT"/bsr "$OUT"/config "$OUT"/catalog
cp -a "$S"/. "$OUT"/
ls -l "$OUT"/*.vol
echo "mkfixtures.sh: total volume bytes: $(cat "$OUT"/*.vol | wc -c); OUTDIR: $(du -sh --apparent-size "$OUT" | cut -f1)"
