#!/bin/bash
# down.sh WORKDIR - stop the daemons started by up.sh (pid files WORKDIR/run/{dir,fd,sd}.pid).
# Only processes whose /proc/PID/cmdline names WORKDIR's config are signalled.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
[ $# -ge 1 ] || { echo "usage: $0 WORKDIR" >&2; exit 2; }
[ -d "$1" ] || { echo "down.sh: no such dir $1" >&2; exit 1; }
W=$(cd "$1" && pwd)
for d in dir fd2 fd sd; do
  if pid=$(lab_pid "$W" "$d"); then
    kill -TERM "$pid"
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then echo "down.sh: bacula-${d%2} ($pid) ignores TERM, sending KILL"; kill -KILL "$pid"; fi
    echo "down.sh: stopped bacula-${d%2} (pid $pid)"
  else
    echo "down.sh: bacula-${d%2} not running"
  fi
  rm -f "$W/run/$d.pid"
done
exit 0
