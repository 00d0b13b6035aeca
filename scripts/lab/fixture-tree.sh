#!/bin/bash
# fixture-tree.sh TREE DIR [STAGE] - build one of the SMALL deterministic source trees that the
# committed fixture volumes (mkfixtures.sh) back up. DIR is wiped first (stage 1).
#   TREE plain     ~350 KB: regular/empty files, files of exactly 64512 and 65536 bytes, a
#                  210000-byte text file, hard links, symlinks (incl. dangling), FIFO, char
#                  and block device, odd names (space, newline, tab, quotes, UTF-8,
#                  non-UTF-8 byte), modes 4755/2755/1777/0000, uids 1234/4000000000,
#                  mtimes before 1970, 0, after 2038 and after 2106
#   TREE sparse    files of 1-3 MiB apparent size with few data extents (holes at start,
#                  middle, end; all-hole; allocated zeros) + a dense file
#   TREE aclxattr  POSIX access ACLs on files, default ACLs on dirs, user.* xattrs (text,
#                  binary, empty, UTF-8, 2000-byte value) on files and a dir
#   TREE accurate  STAGE 1 = for the Full; STAGE 2 mutates it for an Incremental (modify,
#                  delete files + a dir, add, rename, chmod, chown); STAGE 3 mutates the
#                  stage-2 tree for a Differential (modify, delete a stage-2 file, break a
#                  hard link, delete a symlink, add a dir)
# Needs root (chown, mknod), coreutils, openssl (deterministic data = AES-256-CTR keystream
# with fixed keys), attr, acl. All mtimes are set explicitly (whole seconds, UTC).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 plain|sparse|aclxattr|accurate DIR [STAGE]" >&2; exit 2; }
TREE=$1; D=$2; STAGE=${3:-1}
export TZ=UTC LC_ALL=C.UTF-8
umask 022

# prng BYTES SEED -> deterministic pseudo-random bytes on stdout
prng() {
  local key; key=$(printf '%s' "openbrc-fixture-$2" | sha256sum | cut -c1-64)
  { openssl enc -aes-256-ctr -K "$key" -iv 000102030405060708090a0b0c0d0e0f -nosalt -in /dev/zero 2>/dev/null || true; } | head -c "$1"
}
T() { touch -h -d "$1" "${@:2}"; }     # set mtime+atime without following symlinks
# text BYTES -> deterministic, compressible text of exactly BYTES bytes
text() { { awk 'BEGIN{for(i=1;i<=100000;i++) printf "%06d the quick brown fox jumps over the lazy dog\n", i}' 2>/dev/null || true; } | head -c "$1"; }
BASE='2020-01-02 03:04:05'

if [ "$STAGE" = 1 ]; then
  case "$D" in /|"") echo "refusing to wipe '$D'" >&2; exit 2;; esac
  rm -rf "$D"; mkdir -p "$D"
fi
D=$(cd "$D" && pwd); cd "$D"

case "$TREE:$STAGE" in
plain:1)
  : > empty
  printf 'Hello, Bacula!\n' > hello.txt
  printf 'no trailing newline' > no-newline.txt
  mkdir -p data hard/sub links special names "names/dir with space" modes owner times
  prng 65536 p65536 > data/exactly-65536.bin
  prng 64512 p64512 > data/exactly-64512.bin           # = default Bacula block size
  prng 10000 p10000 > data/random-10000.bin
  text 210000 > data/text-210000.txt                    # > 200 KB: records span blocks
  printf 'x' > data/one-byte.bin
  # hard links: a pair, a triple across dirs, a second name for a 64512-byte file
  printf 'hard-linked pair\n' > hard/a.txt; ln hard/a.txt hard/b.txt
  printf 'three names\n' > hard/t1; ln hard/t1 hard/sub/t2; ln hard/t1 hard/sub/t3
  ln data/exactly-64512.bin hard/link-to-64512.bin
  # symlinks
  ln -s ../hello.txt links/to-hello
  ln -s ../data links/to-dir
  ln -s /nonexistent/target/file links/dangling-absolute
  ln -s no-such-file links/dangling-relative
  # special files
  mkfifo -m 0644 special/fifo
  mknod -m 0666 special/chr-1-3 c 1 3
  mknod -m 0660 special/blk-7-0 b 7 0
  # names
  printf 'space\n' > "names/with space.txt"
  printf 'newline\n' > "names/new"$'\n'"line.txt"
  printf 'tab\n' > "names/tab"$'\t'"name.txt"
  printf 'quotes\n' > "names/it's \"quoted\" back\\slash.txt"
  printf 'utf8\n' > "names/ütf-8 日本語 🙂.txt"
  printf 'latin1\n' > "names/latin1-"$'\xe9'"-not-utf8.txt"
  printf 'inner\n' > "names/dir with space/inner.txt"
  # modes
  printf 'setuid\n' > modes/4755-setuid; chmod 4755 modes/4755-setuid
  printf 'setgid\n' > modes/2755-setgid; chmod 2755 modes/2755-setgid
  mkdir modes/1777-sticky-dir; chmod 1777 modes/1777-sticky-dir
  printf 'none\n' > modes/0000-none; chmod 0000 modes/0000-none
  printf 'private\n' > modes/0600-private; chmod 0600 modes/0600-private
  printf '#!/bin/sh\necho hi\n' > modes/0755-exec.sh; chmod 0755 modes/0755-exec.sh
  printf 'readonly\n' > modes/0444-readonly; chmod 0444 modes/0444-readonly
  # owners (numeric ids without passwd entries)
  printf 'uid 1234\n' > owner/uid1234.txt; chown 1234:1234 owner/uid1234.txt
  printf 'uid 4000000000\n' > owner/uid4000000000.txt; chown 4000000000:4000000001 owner/uid4000000000.txt
  mkdir owner/dir-4321; chown 4321:4321 owner/dir-4321
  ln -s uid1234.txt owner/symlink-1234; chown -h 1234:1234 owner/symlink-1234
  # mtimes
  printf 'before 1970\n' > times/before-1970.txt
  printf 'epoch\n' > times/epoch-0.txt
  printf 'after 2038\n' > times/after-2038.txt
  printf 'after 2106\n' > times/after-2106.txt
  find . -depth -exec touch -h -d "$BASE" {} +
  T '1969-07-20 20:17:40' times/before-1970.txt            # -14182940
  T '1970-01-01 00:00:00' times/epoch-0.txt                # 0
  T '2040-06-07 08:09:10' times/after-2038.txt             # 2222669350 (> 2^31)
  T '2200-01-01 00:00:00' times/after-2106.txt             # 7258118400 (> 2^32)
  T '2001-02-03 04:05:06' hello.txt links/to-hello
  T '2015-05-05 05:05:05' names data
  T "$BASE" .
  ;;
sparse:1)
  mkdir sparse
  printf 'small dense file\n' > small.txt
  prng 20000 s20000 > dense-random-20000.bin
  # 3 MiB: 4096 data bytes at 0, a short string at an odd offset in the middle, 4 bytes at the end
  truncate -s 3M sparse/holes-3MiB.img
  prng 4096 s1 | dd of=sparse/holes-3MiB.img conv=notrunc status=none
  printf 'middle at 1.5MiB+1' | dd of=sparse/holes-3MiB.img bs=1 seek=$((3*524288+1)) conv=notrunc status=none
  printf 'TAIL' | dd of=sparse/holes-3MiB.img bs=1 seek=$((3*1048576-4)) conv=notrunc status=none
  # 1 MiB: data then a hole up to the end
  prng 8192 s2 > sparse/hole-at-end-1MiB.img; truncate -s 1M sparse/hole-at-end-1MiB.img
  # 1 MiB: a hole then 4096 data bytes at the end
  truncate -s 1M sparse/hole-at-start-1MiB.img
  prng 4096 s3 | dd of=sparse/hole-at-start-1MiB.img bs=4096 seek=255 conv=notrunc status=none
  # only a hole
  truncate -s 1M sparse/all-hole-1MiB.img
  # allocated (not sparse on disk) zeros: sparse=yes still skips all-zero buffers
  head -c 131072 /dev/zero > sparse/zeros-allocated-128KiB.bin
  find . -depth -exec touch -h -d "$BASE" {} +
  ;;
aclxattr:1)
  mkdir -p acl xattr
  printf 'no acl, no xattr\n' > plain.txt
  printf 'acl file\n' > acl/file-acl.txt
  setfacl -m u:1234:rw-,g:5678:r--,m::rw- acl/file-acl.txt
  mkdir acl/dir-default-acl
  setfacl -m u:1234:rwx acl/dir-default-acl
  setfacl -d -m u:1234:rwx,g:5678:r-x acl/dir-default-acl
  printf 'inherits the default ACL\n' > acl/dir-default-acl/inherited.txt
  mkdir acl/dir-only-default
  setfacl -d -m u:4321:r-x acl/dir-only-default
  printf 'xattr file\n' > xattr/with-xattrs.txt
  setfattr -n user.comment -v "hello xattr" xattr/with-xattrs.txt
  setfattr -n user.binary -v 0x00ff10fe7f80 xattr/with-xattrs.txt
  setfattr -n user.empty xattr/with-xattrs.txt
  setfattr -n user.utf8 -v "välue ✓" xattr/with-xattrs.txt
  mkdir xattr/dir-with-xattr; setfattr -n user.dirattr -v "on a directory" xattr/dir-with-xattr
  printf 'big xattr value\n' > xattr/big-value.txt
  setfattr -n user.big -v "0x$(prng 2000 xv | od -An -tx1 -v | tr -d ' \n')" xattr/big-value.txt
  printf 'both\n' > acl-and-xattr.txt
  setfacl -m u:4321:r-- acl-and-xattr.txt
  setfattr -n user.note -v "acl+xattr" acl-and-xattr.txt
  find . -depth -exec touch -h -d "$BASE" {} +
  ;;
accurate:1)
  mkdir -p data del deldir/sub hard
  printf 'unchanged\n' > keep.txt
  printf 'version 1\n' > modify.txt
  prng 20000 a20000 > data/random-20000.bin
  text 30000 > data/text-30000.txt
  printf 'deleted in stage 2\n' > del/file1.txt
  printf 'kept\n' > del/file2.txt
  printf 'dir deleted in stage 2\n' > deldir/a.txt
  printf 'nested, deleted in stage 2\n' > deldir/sub/b.txt
  printf 'renamed in stage 2\n' > rename-me.txt
  printf 'chmod in stage 2\n' > chmod.txt
  printf 'chown in stage 2\n' > chown.txt
  printf 'hard-linked pair, broken in stage 3\n' > hard/a; ln hard/a hard/b
  ln -s keep.txt symlink-to-keep
  find . -depth -exec touch -h -d "$BASE" {} +
  ;;
accurate:2)
  printf 'version 2\n' > modify.txt
  rm -f del/file1.txt
  rm -rf deldir
  mkdir -p added; printf 'added in stage 2\n' > added/new.txt
  prng 5000 a5000 > added/new-5000.bin
  mv rename-me.txt renamed.txt
  chmod 0600 chmod.txt
  chown 1234:1234 chown.txt
  prng 4096 patch2 | dd of=data/random-20000.bin bs=4096 seek=2 conv=notrunc status=none
  T '2021-03-04 05:06:07' modify.txt added/new.txt added/new-5000.bin data/random-20000.bin added del data .
  ;;
accurate:3)
  printf 'version 3\n' > modify.txt
  rm -f added/new.txt
  rm -f hard/b
  rm -f symlink-to-keep
  mkdir -p "dir3 stage3"; printf 'added in stage 3\n' > "dir3 stage3/x.txt"
  printf 'stage 3 file\n' > stage3.txt
  T '2022-04-05 06:07:08' modify.txt "dir3 stage3/x.txt" stage3.txt "dir3 stage3" added hard .
  ;;
*) echo "fixture-tree: unknown tree/stage $TREE:$STAGE" >&2; exit 2;;
esac
echo "fixture-tree: $TREE stage $STAGE in $D: $(find . | wc -l) entries, $(du -sb --apparent-size . | cut -f1) bytes apparent, $(du -sk . | cut -f1) KiB allocated"
