#!/bin/bash
# label.sh WORKDIR POOL VOLUME [VOLUME...] - pre-label volumes with exact names in POOL
# (on the pool's storage), so that the next job(s) of that pool write into them instead of
# auto-labelled Lab-NNNN volumes. The director uses the oldest appendable volume first, so
# label multi-volume sets in order. bls/bextract insist that the file name of a volume is
# the name in its label, so this is how fixture volumes get their final names.
# FIFO storage (Fifo1): a 'label' would block on the FIFO, so the volume is only created in
# the catalog ('add'); the SD labels it with that name when the job writes to the FIFO.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
[ $# -ge 3 ] || { echo "usage: $0 WORKDIR POOL VOLUME..." >&2; exit 2; }
W=$(cd "$1" && pwd); POOL=$2; shift 2
st=$(lab_sql "$W" "select s.Name from Pool p join Storage s on s.StorageId=p.StorageId where p.Name='$POOL'" 2>/dev/null || true)
if [ -z "$st" ]; then   # pool not yet in the catalog: read its Storage from the config
  st=$(awk -v p="$POOL" '/^Pool \{/{inp=1; n=""} inp && /Name =/{n=$3} inp && /Storage =/{s=$3} inp && /^\}/{if(n==p) print s; inp=0}' "$W/etc/bacula-dir.conf")
fi
[ -n "$st" ] || { echo "label.sh: no storage for pool $POOL" >&2; exit 1; }
for v in "$@"; do
  if [ "$st" = Fifo1 ]; then
    out=$(printf 'add pool=%s storage=%s\n0\n%s\n' "$POOL" "$st" "$v" | bcon "$W" 60)
    grep -q "1 Volumes created in pool $POOL" <<<"$out" || { echo "$out" >&2; echo "label.sh: adding $v failed" >&2; exit 1; }
    echo "label.sh: added $v to the catalog (pool $POOL, storage $st; labelled when written)"
  else
    out=$(printf 'label storage=%s pool=%s volume="%s"\n' "$st" "$POOL" "$v" | bcon "$W" 60)
    grep -q "3000 OK label" <<<"$out" || { echo "$out" >&2; echo "label.sh: labelling $v failed" >&2; exit 1; }
    echo "label.sh: labelled $v (pool $POOL, storage $st)"
  fi
done
