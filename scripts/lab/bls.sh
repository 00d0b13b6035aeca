#!/bin/bash
# bls.sh VOLUMEDIR VOLUMENAME [bls options]  - run Bacula's bls on disk volume file(s).
#   bls.sh DIR VOL            list files (like ls -l)
#   bls.sh DIR VOL -j         list job records (SOS/EOS session labels)
#   bls.sh DIR VOL -k [-v]    list blocks (-v: with their records)
#   bls.sh DIR VOL -v         verbose: records, streams, attributes
#   bls.sh DIR VOL -L         dump the volume label
#   bls.sh DIR 'V1|V2' -j     several volumes in sequence (a job spanning volumes)
#   (-d 200 adds debug output; -p proceeds despite I/O errors)
# VOLUMENAME is the file name in VOLUMEDIR. A minimal bacula-sd.conf (File device
# "LabVolumes", Archive Device = VOLUMEDIR) is written to a temp dir and removed afterwards.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
[ $# -ge 2 ] || { echo "usage: $0 VOLUMEDIR VOLUMENAME [bls options]" >&2; exit 2; }
VD=$(cd "$1" && pwd); V=$2; shift 2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
conf=$(lab_tool_sdconf "$VD" "$tmp")
"$LAB_BIN/bls" -c "$conf" -V "$V" "$@" LabVolumes </dev/null
