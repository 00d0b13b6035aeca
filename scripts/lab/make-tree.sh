#!/bin/bash
# make-tree.sh DIR [STAGE] [SIZE] - build a deterministic, varied source tree for integration
# tests (bigger than the fixture trees of fixture-tree.sh). The lab's Tree* jobs back up
# SRC_ROOT/tree, so e.g.: make-tree.sh $SRC_ROOT/tree 1 && backup.sh $W TreeAll Full
#   STAGE 1 (default): create DIR from scratch (DIR is wiped first!)
#   STAGE 2: mutate a stage-1 tree for an Incremental (modify, delete, add, chmod, xattr change)
#   STAGE 3: mutate a stage-2 tree for a Differential (more changes, break a hardlink)
#   SIZE (stage 1; default 4M; K/M/G suffixes, powers of 1024): size of the big random file
#   bin/random-big.bin; the number of small files in many/ scales with it (SIZE/80K, 50..1000).
#   The rest of the tree is ~1.7 MB of data (+ ~8 MiB of sparse files with little data).
# Needs root (chown, mknod, trusted.* xattr), coreutils, openssl, attr, acl.
# File data is reproducible (AES-256-CTR keystream of zeros with fixed keys), mtimes are set
# explicitly (whole seconds), so two runs give identical content/metadata (not inode/ctime).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DIR [1|2|3] [SIZE]" >&2; exit 2; }
D=$1; STAGE=${2:-1}
SIZE=$(numfmt --from=iec "${3:-4M}") || { echo "make-tree: bad SIZE $3" >&2; exit 2; }
NMANY=$((SIZE / 81920)); [ "$NMANY" -ge 50 ] || NMANY=50; [ "$NMANY" -le 1000 ] || NMANY=1000
export TZ=UTC LC_ALL=C.UTF-8

# prng BYTES SEED -> deterministic pseudo-random bytes on stdout
prng() {
  local key; key=$(printf '%s' "openbrc-tree-$2" | sha256sum | cut -c1-64)
  # openssl dies of SIGPIPE when head is done: ignore that (we run with pipefail)
  { openssl enc -aes-256-ctr -K "$key" -iv 000102030405060708090a0b0c0d0e0f -nosalt -in /dev/zero 2>/dev/null || true; } | head -c "$1"
}
T() { touch -h -d "$1" "${@:2}"; }     # set mtime (and atime) without following symlinks
XATTR_OK=1; ACL_OK=1

if [ "$STAGE" = 1 ]; then
  [ "$D" != / ] || exit 2
  rm -rf "$D"; mkdir -p "$D"; D=$(cd "$D" && pwd); cd "$D"
  # --- plain files
  : > empty
  printf 'Hello, Bacula!\n' > hello.txt
  printf 'no trailing newline' > no-newline.txt
  mkdir -p text bin sparse links hard/sub modes owner xattr acl special emptydir many todelete
  seq 1 20000 > text/seq-1-20000.txt
  for i in $(seq 1 3000); do printf 'line %05d: the quick brown fox jumps over the lazy dog\n' "$i"; done > text/compressible.txt
  for i in 1 2 3 4 5 6; do cat text/compressible.txt; done > text/compressible-1MiB.txt   # ~1 MiB, gzip-friendly
  rm text/compressible.txt
  # --- binary files: > one Bacula block (64512 B) and several MiB (records span blocks)
  prng "$SIZE" big    > bin/random-big.bin
  prng 100000  blk    > bin/random-100000.bin
  prng 64512   b64512 > bin/exactly-64512.bin
  prng 65536   b65536 > bin/exactly-65536.bin
  prng 65537   b65537 > bin/exactly-65537.bin
  prng 1       one    > bin/one-byte.bin
  head -c 262144 /dev/zero > bin/zeros-256KiB.bin          # allocated zeros (not sparse)
  # --- sparse files
  truncate -s 6M sparse/sparse-6MiB.img
  prng 4096  s1 | dd of=sparse/sparse-6MiB.img conv=notrunc status=none
  prng 65536 s2 | dd of=sparse/sparse-6MiB.img bs=1M seek=2 conv=notrunc status=none
  printf 'data at 4MiB+1' | dd of=sparse/sparse-6MiB.img bs=1 seek=$((4*1048576+1)) conv=notrunc status=none
  printf 'TAIL' | dd of=sparse/sparse-6MiB.img bs=1 seek=$((6*1048576-4)) conv=notrunc status=none
  prng 4096 s3 > sparse/hole-at-end-3MiB.img; truncate -s 3M sparse/hole-at-end-3MiB.img
  truncate -s 1M sparse/all-hole-1MiB.img
  # --- symlinks
  ln -s ../hello.txt links/to-hello
  ln -s /nonexistent/target/file links/dangling-absolute
  ln -s ../text links/to-dir
  ln -s "$(printf 'x%.0s' $(seq 1 200))" links/long-target
  # --- hard links (pair, cross-directory, triple, big data)
  printf 'hardlinked content\n' > hard/a.txt; ln hard/a.txt hard/b.txt
  prng 200000 hl > hard/big.bin; ln hard/big.bin hard/sub/big-link.bin
  printf 'three names\n' > hard/t1; ln hard/t1 hard/t2; ln hard/t1 hard/sub/t3
  # --- deep tree, unusual names
  deep="deep/level 1/level 2 (two)/lëvel-3-ünïcödé/日本語ディレクトリ/🙂 emoji dir"
  mkdir -p "$deep"
  printf 'deep file\n' > "$deep/file with spaces.txt"
  printf 'newline\n' > "deep/name with"$'\n'"newline.txt"
  printf 'tab\n' > "deep/tab"$'\t'"in name.txt"
  printf 'quotes\n' > "deep/it's \"quoted\" & <angled> \$dollar.txt"
  printf 'backslash\n' > "deep/back\\slash*star?.txt"
  printf 'dash\n' > deep/-leading-dash
  printf 'hidden\n' > deep/.hidden
  printf 'latin1\n' > "deep/latin1-"$'\xe9'"-not-utf8.txt"
  printf 'long name\n' > "deep/$(printf 'L%.0s' $(seq 1 251)).txt"      # 255-byte name
  p=deep/long-path; for i in $(seq 1 8); do p="$p/$(printf "d${i}%.0s" $(seq 1 50))"; done
  mkdir -p "$p"; printf 'long path\n' > "$p/leaf.txt"                      # path > 800 bytes
  for i in $(seq 0 $((NMANY - 1))); do printf 'small file %02d\n' "$i" > "many/file-$(printf %02d "$i").txt"; done
  printf 'will be deleted\n' > todelete/x.txt; printf 'also deleted\n' > todelete/y.txt
  # --- modes
  printf 'private\n' > modes/0600.txt; chmod 0600 modes/0600.txt
  printf '#!/bin/sh\necho hi\n' > modes/0755.sh; chmod 0755 modes/0755.sh
  printf 'setuid\n' > modes/4755-setuid; chmod 4755 modes/4755-setuid
  printf 'setgid\n' > modes/2755-setgid; chmod 2755 modes/2755-setgid
  printf 'none\n' > modes/0000.txt; chmod 0000 modes/0000.txt
  printf 'readonly\n' > modes/0444.txt; chmod 0444 modes/0444.txt
  mkdir -p modes/1777-sticky-dir modes/0700-dir modes/2775-setgid-dir
  chmod 1777 modes/1777-sticky-dir; chmod 0700 modes/0700-dir; chmod 2775 modes/2775-setgid-dir
  # --- ownership (numeric ids, no passwd entries needed)
  printf 'uid 1234\n' > owner/uid1234.txt; chown 1234:1234 owner/uid1234.txt
  printf 'uid 1234 gid 5678\n' > owner/uid1234-gid5678.txt; chown 1234:5678 owner/uid1234-gid5678.txt
  mkdir owner/dir-4321; chown 4321:4321 owner/dir-4321
  ln -s uid1234.txt owner/symlink-uid1234; chown -h 1234:1234 owner/symlink-uid1234
  printf 'big uid\n' > owner/uid-4000000000.txt; chown 4000000000:4000000001 owner/uid-4000000000.txt
  # --- special files
  mkfifo special/fifo
  mknod special/chardev-1-3 c 1 3 2>/dev/null || echo "make-tree: mknod char device not permitted" >&2
  mknod special/blockdev-7-0 b 7 0 2>/dev/null || echo "make-tree: mknod block device not permitted" >&2
  # --- extended attributes / ACLs (probe the filesystem first)
  printf 'xattr file\n' > xattr/with-xattrs.txt
  if setfattr -n user.comment -v "hello xattr" xattr/with-xattrs.txt 2>/dev/null; then
    setfattr -n user.binary -v 0x00ff10fe7f80 xattr/with-xattrs.txt
    setfattr -n user.empty xattr/with-xattrs.txt
    setfattr -n user.utf8 -v "välue ✓" xattr/with-xattrs.txt
    setfattr -n trusted.lab -v "trusted value" xattr/with-xattrs.txt 2>/dev/null || echo "make-tree: trusted.* xattr not permitted" >&2
    mkdir xattr/dir-with-xattr; setfattr -n user.dirattr -v "on a directory" xattr/dir-with-xattr
    prng 5000 xv > xattr/big-value.bin; setfattr -n user.big -v "0x$(prng 3000 xv2 | od -An -tx1 -v | tr -d ' \n')" xattr/big-value.bin
  else XATTR_OK=0; echo "make-tree: user xattrs NOT supported on this filesystem" >&2; fi
  printf 'acl file\n' > acl/file-acl.txt
  if setfacl -m u:1234:rw,g:5678:r,m::rw acl/file-acl.txt 2>/dev/null; then
    mkdir acl/dir-default-acl; setfacl -m u:1234:rwx acl/dir-default-acl; setfacl -d -m u:1234:rwx,g:5678:rx acl/dir-default-acl
    printf 'both\n' > acl/acl-and-xattr.txt; setfacl -m u:4321:r acl/acl-and-xattr.txt
    [ "$XATTR_OK" = 1 ] && setfattr -n user.note -v "acl+xattr" acl/acl-and-xattr.txt
  else ACL_OK=0; echo "make-tree: POSIX ACLs NOT supported on this filesystem" >&2; fi
  # --- mtimes: everything gets a fixed time, then some specific ones (dirs last)
  find . -depth -exec touch -h -d '2020-01-02 03:04:05' {} +
  T '2001-02-03 04:05:06' hello.txt text/seq-1-20000.txt
  T '2040-06-07 08:09:10' bin/random-big.bin             # after 2038 (64-bit time)
  T '1970-01-01 00:00:01' bin/one-byte.bin
  T '1969-12-31 23:00:00' modes/0444.txt                 # before the epoch (negative)
  T '2010-10-10 10:10:10' links/to-hello owner/symlink-uid1234
  T '2015-05-05 05:05:05' "$deep" deep                   # directories
  T '2020-01-02 03:04:05' .
elif [ "$STAGE" = 2 ]; then
  D=$(cd "$D" && pwd); cd "$D"
  printf 'second line (stage 2)\n' >> hello.txt                            # modify
  printf 'modified in stage 2\n' > many/file-07.txt
  rm -f many/file-10.txt many/file-11.txt                                   # delete files
  rm -rf todelete                                                           # delete a dir
  mkdir -p added; printf 'added in stage 2\n' > added/new.txt               # add
  prng 300000 st2 > added/new-300000.bin
  mv many/file-20.txt many/file-20-renamed.txt                             # rename
  chmod 0640 modes/0600.txt                                                 # metadata only
  chown 1234:1234 many/file-30.txt                                          # metadata only
  [ "$XATTR_OK" = 1 ] && setfattr -n user.comment -v "changed in stage 2" xattr/with-xattrs.txt
  prng 8192 st2patch | dd of=bin/random-100000.bin bs=1 seek=50000 conv=notrunc status=none
  T '2021-03-04 05:06:07' hello.txt many/file-07.txt added/new.txt added/new-300000.bin bin/random-100000.bin
  T '2021-03-04 05:06:07' added many .                                       # dirs whose entries changed
elif [ "$STAGE" = 3 ]; then
  D=$(cd "$D" && pwd); cd "$D"
  printf 'third line (stage 3)\n' >> hello.txt
  rm -f hard/b.txt                                                          # break hardlink pair
  rm -f added/new.txt                                                       # delete a stage-2 file
  printf 'added in stage 3\n' > added/stage3.txt
  prng 4096 st3 | dd of=bin/random-big.bin bs=4096 seek=$(( $(stat -c %s bin/random-big.bin) / 8192 )) conv=notrunc status=none
  mkdir -p "deep/new dir stage 3"; printf 'x\n' > "deep/new dir stage 3/x.txt"
  T '2022-04-05 06:07:08' hello.txt added/stage3.txt bin/random-big.bin "deep/new dir stage 3/x.txt"
  T '2022-04-05 06:07:08' "deep/new dir stage 3" added hard deep             # dirs whose entries changed
else
  echo "make-tree: bad stage $STAGE" >&2; exit 2
fi
echo "make-tree: stage $STAGE done in $D: $(find . | wc -l) entries, $(du -sb . | cut -f1) bytes apparent, $(du -sk . | cut -f1) KiB allocated (xattr=$XATTR_OK acl=$ACL_OK)"
