#!/bin/bash
# install.sh - idempotently install Bacula 9.6.x (Debian 12 packages) + helper tools.
# Run as root on Debian 12. Does nothing (but print versions) when everything is installed;
# otherwise apt-get update + install. Never prompts (debconf preseed, noninteractive) and
# never starts the packaged daemons (a temporary policy-rc.d that exits 101).
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "install.sh: must run as root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive

PKGS=(bacula-common bacula-common-sqlite3 bacula-director bacula-director-sqlite3
      bacula-sd bacula-fd bacula-console bacula-bscan
      sqlite3 attr acl openssl python3 time coreutils procps diffutils)

need=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || need+=("$p")
done

if [ "${#need[@]}" -gt 0 ]; then
  echo "install.sh: installing ${need[*]}"
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  trap 'if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
  # dbconfig-common: let it create the (unused) packaged SQLite catalog silently.
  debconf-set-selections <<'SEL'
dbconfig-common dbconfig-common/dbconfig-install boolean true
bacula-director-sqlite3 bacula-director-sqlite3/dbconfig-install boolean true
bacula-director-sqlite3 bacula-director-sqlite3/database-type select sqlite3
bacula-director-sqlite3 bacula-director-sqlite3/internal/skip-preseed boolean true
bacula-director-sqlite3 bacula-director-sqlite3/missing-db-package-error select abort
bacula-director-sqlite3 bacula-director-sqlite3/install-error select ignore
bacula-director-sqlite3 bacula-director-sqlite3/upgrade-error select ignore
SEL
  apt-get update -qq
  apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${PKGS[@]}"
fi

echo "== installed versions"
dpkg-query -W -f='${Package}\t${Version}\n' "${PKGS[@]}" | awk -F'\t' '{printf "%-26s %s\n", $1, $2}'
echo "== binaries"
for b in bacula-dir bacula-sd bacula-fd bconsole bls bextract bscan; do
  printf '%-10s %s\n' "$b" "$(command -v $b || ls /usr/sbin/$b 2>/dev/null || echo MISSING)"
done
