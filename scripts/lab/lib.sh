# lib.sh - shared helpers for the openbrc Bacula lab scripts (sourced, not executed).
# Ports can be overridden from the environment (DIR_PORT FD_PORT SD_PORT FD2_PORT).
: "${DIR_PORT:=19101}" "${FD_PORT:=19102}" "${SD_PORT:=19103}" "${FD2_PORT:=$((SD_PORT + 1))}"
LAB_BIN=${LAB_BIN:-/usr/sbin}
# Daemon ids, in start order (stopped in reverse). fd2 is a second bacula-fd (client lab-fd2)
# with a small Maximum Network Buffer Size, used by the interleave jobs. Config of id X:
# WORKDIR/etc/bacula-X.conf, binary bacula-${X%2}, pid file WORKDIR/run/X.pid.
LAB_DAEMONS="sd fd fd2 dir"
LAB_PY=/usr/bin/python3; [ -x "$LAB_PY" ] || LAB_PY=python3

lab_abs() { mkdir -p "$1" && (cd "$1" && pwd); }

# bcon WORKDIR [TIMEOUT] <<< "commands"  - run bconsole non-interactively against the lab director
bcon() { timeout "${2:-60}" "$LAB_BIN/bconsole" -n -c "$1/etc/bconsole.conf"; }

# lab_sql WORKDIR SQL - query the lab catalog (SQLite)
lab_sql() { sqlite3 -cmd '.timeout 5000' "$1/working/dir/bacula.db" "$2"; }

# pid of a lab daemon if it is running (checks that /proc/PID/cmdline is really ours)
lab_pid() {  # WORKDIR DAEMON(sd|fd|fd2|dir)
  local pf="$1/run/$2.pid" pid
  [ -s "$pf" ] || return 1
  pid=$(cat "$pf")
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "bacula-${2%2} .*-c $1/etc/bacula-$2.conf" || return 1
  echo "$pid"
}

# lab_port_free PORT - true if nothing listens on 127.0.0.1:PORT
lab_port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# lab_tool_sdconf VOLUMEDIR CONFDIR [MEDIATYPE] - write a minimal SD config for the
# stand-alone tools (bls/bextract/bscan) with a File device "LabVolumes" whose Archive Device
# is VOLUMEDIR. MEDIATYPE (default File1) matters only with a bootstrap: bextract -b wants
# the device's Media Type to equal the MediaType= recorded in the .bsr. Prints the config path.
lab_tool_sdconf() {
  local vd cf
  vd=$(cd "$1" && pwd); mkdir -p "$2"; cf="$2/bacula-sd-tools.conf"
  cat > "$cf" <<CONF
Storage {
  Name = lab-tools-sd
  WorkingDirectory = "$2"
  Pid Directory = "$2"
  SDPort = 19199
  SDAddress = 127.0.0.1
}
Device {
  Name = LabVolumes
  Media Type = ${3:-File1}
  Archive Device = "$vd"
  Device Type = File
  Random Access = yes
  AutomaticMount = yes
  RemovableMedia = no
  AlwaysOpen = no
  LabelMedia = no
}
Messages {
  Name = Standard
  stdout = all, !skipped, !saved
}
CONF
  echo "$cf"
}
