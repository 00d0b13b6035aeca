#!/usr/bin/python3
"""tree-manifest.py DIR [--compare EXPECTED.tsv [--subset] [--ignore COLS] [--no-dir-mtime]]

Print a metadata manifest of the live tree DIR: a header line, then one line per entry
(DIR itself is ".", sorted by raw path bytes), tab-separated:

  path      Go strconv.Quote of the raw path bytes relative to DIR (parse with
            strconv.Unquote; non-UTF-8 bytes appear as \\xNN, newline as \\n, ...)
  type      reg dir lnk fifo chr blk sock
  mode      permission bits incl. suid/sgid/sticky, 4 octal digits (e.g. 4755, 1777, 0000)
  uid gid   numeric
  size      st_size (regular files: length; symlinks: target length; dirs: as reported
            by the filesystem, e.g. 4096)
  mtime     unix seconds (may be negative)
  content   reg: sha256 hex of the data; lnk: Go-quoted target; chr/blk: rdev=MAJOR,MINOR; else -
  hardlink  hard-linked regular files (nlink > 1): Go-quoted path of the group's first
            member in this sort order (same for all members); else -
  xattrs    name=hexvalue,... sorted by name, excluding system.posix_acl_*; - if none
            (an empty value is "name=")
  acl       access ACL as text, e.g. user::rw-,user:1234:rw-,group::r--,mask::rw-,other::r--
            (only when the file has an extended ACL); else -
  defacl    default ACL of a directory as text; else -

--compare EXPECTED.tsv: compare the manifest of DIR with EXPECTED (exit 1 on differences).
  --subset     every entry of DIR must be in EXPECTED (not the other way round); "." and
               directory mtimes are not compared
  --ignore C,C column names not compared (e.g. xattrs,acl,defacl)
  --no-dir-mtime  directory mtimes not compared (restores of Full + Incremental/Differential)
  Directory sizes are never compared.
"""
import hashlib, os, stat, sys, unicodedata

COLS = ['path', 'type', 'mode', 'uid', 'gid', 'size', 'mtime', 'content', 'hardlink', 'xattrs', 'acl', 'defacl']
_ESC = {0x07: '\\a', 0x08: '\\b', 0x0c: '\\f', 0x0a: '\\n', 0x0d: '\\r', 0x09: '\\t', 0x0b: '\\v',
        0x5c: '\\\\', 0x22: '\\"'}


def goquote(b):
    """Go's strconv.Quote for a byte string (printability by Unicode category L/M/N/P/S)."""
    out, i = ['"'], 0
    while i < len(b):
        c = b[i]
        if c < 0x80:
            if c in _ESC:
                out.append(_ESC[c])
            elif 0x20 <= c < 0x7f:
                out.append(chr(c))
            else:
                out.append('\\x%02x' % c)
            i += 1
            continue
        n = 2 if 0xc2 <= c <= 0xdf else 3 if 0xe0 <= c <= 0xef else 4 if 0xf0 <= c <= 0xf4 else 0
        ch = None
        if n and i + n <= len(b):
            try:
                ch = b[i:i + n].decode('utf-8')
            except UnicodeDecodeError:
                ch = None
        if ch is None:
            out.append('\\x%02x' % c)
            i += 1
            continue
        r = ord(ch)
        if unicodedata.category(ch)[0] in 'LMNPS':
            out.append(ch)
        elif r < 0x10000:
            out.append('\\u%04x' % r)
        else:
            out.append('\\U%08x' % r)
        i += n
    out.append('"')
    return ''.join(out)


def acl_text(raw):
    """Decode a Linux system.posix_acl_* xattr value (version 2) to getfacl-like text."""
    import struct
    tags = {0x01: 'user', 0x02: 'user', 0x04: 'group', 0x08: 'group', 0x10: 'mask', 0x20: 'other'}
    (ver,) = struct.unpack_from('<I', raw, 0)
    if ver != 2:
        return 'raw=' + raw.hex()
    ents = []
    for off in range(4, len(raw), 8):
        tag, perm, qid = struct.unpack_from('<HHI', raw, off)
        q = str(qid) if tag in (0x02, 0x08) else ''
        p = ('r' if perm & 4 else '-') + ('w' if perm & 2 else '-') + ('x' if perm & 1 else '-')
        ents.append((tag, qid if q else -1, '%s:%s:%s' % (tags.get(tag, 'tag%d' % tag), q, p)))
    ents.sort(key=lambda e: (e[0], e[1]))
    return ','.join(e[2] for e in ents)


def ftype(m):
    for t, f in (('dir', stat.S_ISDIR), ('reg', stat.S_ISREG), ('lnk', stat.S_ISLNK), ('fifo', stat.S_ISFIFO),
                 ('chr', stat.S_ISCHR), ('blk', stat.S_ISBLK), ('sock', stat.S_ISSOCK)):
        if f(m):
            return t
    return '?'


def manifest(root):
    root = os.fsencode(root)
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root:
            entries.append((b'.', dirpath))
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            entries.append((os.path.relpath(p, root), p))
    entries.sort()
    inodes, rows = {}, []
    for rel, p in entries:
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            inodes.setdefault((st.st_dev, st.st_ino), rel)     # first in sort order
    for rel, p in entries:
        st = os.lstat(p)
        t = ftype(st.st_mode)
        content = '-'
        if t == 'reg':
            h = hashlib.sha256()
            with open(p, 'rb') as f:
                for chunk in iter(lambda: f.read(1 << 20), b''):
                    h.update(chunk)
            content = h.hexdigest()
        elif t == 'lnk':
            content = goquote(os.readlink(p))
        elif t in ('chr', 'blk'):
            content = 'rdev=%d,%d' % (os.major(st.st_rdev), os.minor(st.st_rdev))
        hl = '-'
        if t == 'reg' and st.st_nlink > 1:
            hl = goquote(inodes[(st.st_dev, st.st_ino)])
        xa, acl, defacl = [], '-', '-'
        try:
            names = sorted(os.listxattr(p, follow_symlinks=False))
        except OSError:
            names = []
        for n in names:
            v = os.getxattr(p, n, follow_symlinks=False)
            if n == 'system.posix_acl_access':
                acl = acl_text(v)
            elif n == 'system.posix_acl_default':
                defacl = acl_text(v)
            else:
                xa.append('%s=%s' % (n, v.hex()))
        rows.append([goquote(rel), t, '%04o' % stat.S_IMODE(st.st_mode), str(st.st_uid), str(st.st_gid),
                     str(st.st_size), str(st.st_mtime_ns // 1000000000), content, hl,
                     ','.join(xa) if xa else '-', acl, defacl])
    return rows


def load(path):
    rows = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.rstrip('\n')
            if line and not line.startswith('path\t'):
                rows.append(line.split('\t'))
    return rows


def compare(actual, expected, subset, ignore, no_dir_mtime=False):
    exp = {r[0]: r for r in expected}
    act = {r[0]: r for r in actual}
    errs = []
    for p, a in act.items():
        e = exp.get(p)
        if e is None:
            errs.append('extra entry %s' % p)
            continue
        if subset and p == '"."':
            continue
        for i, c in enumerate(COLS):
            if c in ignore or (c == 'size' and a[1] == 'dir') or (c == 'mtime' and (subset or no_dir_mtime) and a[1] == 'dir'):
                continue
            if a[i] != e[i]:
                errs.append('%s: %s %s != expected %s' % (p, c, a[i], e[i]))
    if not subset:
        for p in exp:
            if p not in act:
                errs.append('missing entry %s' % p)
    return errs


def main(argv):
    args, opts, i = [], {}, 0
    while i < len(argv):
        a = argv[i]
        if a in ('--compare', '--ignore'):
            opts[a] = argv[i + 1]
            i += 2
        elif a.startswith('--'):
            opts[a] = True
            i += 1
        else:
            args.append(a)
            i += 1
    if len(args) != 1:
        sys.exit(__doc__)
    rows = manifest(args[0])
    if '--compare' in opts:
        ignore = set(filter(None, opts.get('--ignore', '').split(',')))
        errs = compare(rows, load(opts['--compare']), '--subset' in opts, ignore, '--no-dir-mtime' in opts)
        for e in errs[:50]:
            print('  ' + e)
        print('compare %s vs %s: %d entries, %s' % (args[0], opts['--compare'], len(rows),
                                                    'OK' if not errs else '%d DIFFERENCES' % len(errs)))
        return 1 if errs else 0
    sys.stdout.write('\t'.join(COLS) + '\n')
    for r in rows:
        sys.stdout.write('\t'.join(r) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
