#!/usr/bin/python3
"""mkmanifest.py - write MANIFEST.tsv / MANIFEST.md and catalog/*.tsv for mkfixtures.sh.

Reads the lab WORKDIR (catalog working/dir/bacula.db, etc/*.conf), the fixture list written
by mkfixtures.sh, the verification results and fixture properties; writes into STAGING.
Not meant to be run by hand.
"""
import argparse, datetime, hashlib, os, re, sqlite3, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import importlib.util
_spec = importlib.util.spec_from_file_location('tm', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'tree-manifest.py'))
tm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tm)
goquote = tm.goquote

ap = argparse.ArgumentParser()
for a in ('workdir', 'staging', 'fixtures', 'verify', 'props', 'version', 'pkgversion', 'src-root',
          'span-bytes', 'small-block', 'bandwidth', 'fd2-buffer'):
    ap.add_argument('--' + a, required=True)
A = ap.parse_args()
W, S = A.workdir, A.staging


def blocks(text, kind):
    """Resource blocks 'Kind {' ... '}' (top level, multi-line) and 'Kind { ... }' one-liners."""
    out = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        l = lines[i]
        if l.startswith(kind + ' {'):
            if l.rstrip().endswith('}') and l.count('{') == l.count('}'):
                body = [l]
            else:
                body = [l]
                depth = l.count('{') - l.count('}')
                while depth > 0:
                    i += 1
                    body.append(lines[i])
                    depth += lines[i].count('{') - lines[i].count('}')
            t = '\n'.join(body)
            m = re.search(r'Name\s*=\s*"?([^";\n]+)"?', t)
            out[m.group(1).strip()] = t.replace(W, 'WORKDIR')
        i += 1
    return out


dirconf = open(os.path.join(W, 'etc/bacula-dir.conf')).read()
sdconf = open(os.path.join(W, 'etc/bacula-sd.conf')).read()
fd2conf = open(os.path.join(W, 'etc/bacula-fd2.conf')).read()
FILESETS, JOBS, POOLS, STORAGES, CLIENTS = (blocks(dirconf, k) for k in ('FileSet', 'Job', 'Pool', 'Storage', 'Client'))
FDS = blocks(fd2conf, 'FileDaemon')
DEVICES = blocks(sdconf, 'Device')
JOBDEFS = blocks(dirconf, 'JobDefs')


def directive(block, name, default=None):
    m = re.search(r'(?:^|[{;]|\n)\s*' + name + r'\s*=\s*"?([^";\n}]+)"?', block, re.I)
    return m.group(1).strip() if m else default


def fs_options(fs):
    m = re.search(r'Options \{(.*?)\}', FILESETS[fs], re.S)
    if not m:
        return '(no Options block: Bacula defaults)'
    return '; '.join(x.strip() for x in m.group(1).strip().splitlines() if x.strip())


def job_fileset(job):
    return directive(JOBS[job], 'FileSet')


def job_extra(job):
    parts = [p.strip() for p in re.sub(r'^Job \{|\}$', '', JOBS[job].strip()).split(';')]
    return '; '.join(p for p in parts if p and not p.startswith(('Name', 'JobDefs', 'FileSet')))


db = sqlite3.connect(os.path.join(W, 'working/dir/bacula.db'))
db.text_factory = bytes
q = lambda sql, *a: db.execute(sql, a).fetchall()
s = lambda b: b.decode('utf-8', 'surrogateescape') if isinstance(b, bytes) else b

fixtures = []
with open(A.fixtures) as f:
    for line in f:
        vol, fx, jobs, trees, st, pool, cmd, notes = line.rstrip('\n').split('\t')
        fixtures.append(dict(vol=vol, fx=fx, jobs=[j.split(':') for j in jobs.split()], trees=trees.split(),
                             storage=st, pool=pool, cmd=cmd, notes=notes))
verify = [l.rstrip('\n').split('\t') for l in open(A.verify)]
props = dict(l.rstrip('\n').split('\t', 1) for l in open(A.props))

LEVEL = {b'F': 'Full', b'I': 'Incremental', b'D': 'Differential'}
jobrow = {}
for r in q('''select j.JobId, j.Name, j.Job, j.Level, j.JobStatus, j.JobFiles, j.JobBytes, j.ReadBytes,
              j.VolSessionId, j.VolSessionTime, j.StartTime, j.EndTime, f.FileSet, p.Name
              from Job j left join FileSet f using(FileSetId) left join Pool p using(PoolId) where j.Type='B' order by j.JobId'''):
    jobrow[r[0]] = dict(JobId=r[0], Name=s(r[1]), Job=s(r[2]), Level=LEVEL.get(r[3], s(r[3])), JobStatus=s(r[4]),
                        JobFiles=r[5], JobBytes=r[6], ReadBytes=r[7], VolSessionId=r[8], VolSessionTime=r[9],
                        StartTime=s(r[10]), EndTime=s(r[11]), FileSet=s(r[12]), Pool=s(r[13]))
jm = {}
for r in q('''select m.VolumeName, jm.JobId, jm.FirstIndex, jm.LastIndex, jm.StartFile, jm.EndFile, jm.StartBlock,
              jm.EndBlock, jm.VolIndex from JobMedia jm join Media m using(MediaId) order by jm.JobMediaId'''):
    jm.setdefault((s(r[0]), r[1]), []).append(r[2:])

# ---------------------------------------------------------------- catalog dumps
os.makedirs(os.path.join(S, 'catalog'), exist_ok=True)
with open(os.path.join(S, 'catalog/jobs.tsv'), 'w') as f:
    cols = ['JobId', 'Name', 'Job', 'Level', 'JobStatus', 'JobFiles', 'JobBytes', 'ReadBytes', 'VolSessionId',
            'VolSessionTime', 'StartTime', 'EndTime', 'FileSet', 'Pool']
    f.write('\t'.join(cols) + '\n')
    for j in jobrow.values():
        f.write('\t'.join(str(j[c]) for c in cols) + '\n')
with open(os.path.join(S, 'catalog/jobmedia.tsv'), 'w') as f:
    f.write('VolumeName\tJobId\tFirstIndex\tLastIndex\tStartFile\tEndFile\tStartBlock\tEndBlock\tVolIndex\n')
    for (v, jid), rows in jm.items():
        for r in rows:
            f.write('\t'.join([v, str(jid)] + [str(x) for x in r]) + '\n')
with open(os.path.join(S, 'catalog/media.tsv'), 'w') as f:
    f.write('MediaId\tVolumeName\tMediaType\tPool\tVolStatus\tVolBytes\tVolJobs\tVolFiles\tVolBlocks\tFirstWritten\tLastWritten\n')
    for r in q('''select m.MediaId, m.VolumeName, m.MediaType, p.Name, m.VolStatus, m.VolBytes, m.VolJobs, m.VolFiles,
                  m.VolBlocks, m.FirstWritten, m.LastWritten from Media m left join Pool p using(PoolId) order by m.MediaId'''):
        f.write('\t'.join(str(s(x)) for x in r) + '\n')
with open(os.path.join(S, 'catalog/files.tsv'), 'w') as f:
    # Path+Name Go-quoted (raw bytes); LStat and the digest exactly as the catalog stores them
    # (Bacula base64); DeltaSeq; FileIndex; deleted files of accurate jobs have FileIndex 0.
    f.write('JobId\tFileIndex\tPath\tLStat\tDigest\tDeltaSeq\n')
    for r in q('''select f.JobId, f.FileIndex, p.Path, n.Name, f.LStat, f.MD5, f.DeltaSeq from File f
                  join Path p using(PathId) join Filename n using(FilenameId) order by f.JobId, f.FileIndex, p.Path, n.Name'''):
        f.write('\t'.join([str(r[0]), str(r[1]), goquote(r[2] + r[3]), s(r[4]), s(r[5]), str(r[6])]) + '\n')

# ---------------------------------------------------------------- per volume rows
def devinfo(storage):
    dev = directive(STORAGES[storage], 'Device')
    d = DEVICES[dev]
    return dev, directive(d, 'Device Type'), directive(d, 'Maximum Block Size', '64512 (default)')


def tree_entries(t):
    with open(os.path.join(S, 'trees', t + '.tsv')) as f:
        return sum(1 for _ in f) - 1


def streams(vol):
    p = os.path.join(S, 'bls', vol + '.blockrecs.txt')
    cnt, nblk = {}, 0
    for line in open(p, encoding='utf-8', errors='replace'):
        if line.startswith('Blk='):
            nblk += 1
        m = re.search(r' Rec: .* FI=(\S+) Strm=(\S+) ', line)
        if m and not m.group(1).endswith('_LABEL'):
            cnt[m.group(2)] = cnt.get(m.group(2), 0) + 1
        elif m:
            cnt[m.group(1)] = cnt.get(m.group(1), 0) + 1
    return nblk, ','.join('%s:%d' % kv for kv in sorted(cnt.items()))


rows = []
for fx in fixtures:
    p = os.path.join(S, fx['vol'])
    data = open(p, 'rb').read()
    dev, dtype, bs = devinfo(fx['storage'])
    vb = directive(POOLS[fx['pool']], 'Maximum Volume Bytes', '0') or '0'
    mvj = directive(POOLS[fx['pool']], 'Maximum Volume Jobs', '-')
    jobs = []
    for name, jid, level in fx['jobs']:
        j = jobrow[int(jid)]
        seg = jm.get((fx['vol'], int(jid)), [])
        fi = '%d-%d' % (min(x[0] for x in seg), max(x[1] for x in seg)) if seg else '-'
        fs = j['FileSet']
        jobs.append(dict(j, FileIndexes=fi, Options=fs_options(fs), Extra=job_extra(name)))
    nblk, strm = streams(fx['vol'])
    rows.append(dict(fx, bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), jobsinfo=jobs, device=dev,
                     devtype=dtype, blocksize=bs, volbytes=vb, voljobs=mvj, blocks=nblk, streams=strm))

TSVCOLS = ['volume', 'bytes', 'sha256', 'bacula_version', 'fixture', 'jobs', 'levels', 'jobids', 'job_files',
           'job_bytes', 'vol_session', 'file_indexes', 'filesets', 'fileset_options', 'job_directives', 'trees',
           'source_paths', 'storage', 'device', 'device_type', 'max_block_size', 'pool', 'max_volume_bytes',
           'max_volume_jobs', 'blocks', 'records', 'command']
with open(os.path.join(S, 'MANIFEST.tsv'), 'w') as f:
    f.write('\t'.join(TSVCOLS) + '\n')
    for r in rows:
        J = r['jobsinfo']
        vals = [r['vol'], r['bytes'], r['sha256'], A.version, r['fx'],
                ','.join(j['Name'] for j in J), ','.join(j['Level'] for j in J), ','.join(str(j['JobId']) for j in J),
                ','.join(str(j['JobFiles']) for j in J), ','.join(str(j['JobBytes']) for j in J),
                ','.join('%d/%d' % (j['VolSessionId'], j['VolSessionTime']) for j in J),
                ','.join(j['FileIndexes'] for j in J), ','.join(j['FileSet'] for j in J),
                ' || '.join(j['Options'] for j in J), ' || '.join(j['Extra'] or '-' for j in J),
                ','.join(r['trees']), ','.join(A.src_root + '/' + t.split('-')[0] for t in r['trees']),
                r['storage'], r['device'], r['devtype'], r['blocksize'], r['pool'], r['volbytes'], r['voljobs'],
                r['blocks'], r['streams'], r['cmd']]
        f.write('\t'.join(str(v) for v in vals) + '\n')

# ---------------------------------------------------------------- MANIFEST.md
now = datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M UTC')
md = []
w = md.append
total = sum(r['bytes'] for r in rows)
w('# Bacula %s fixture volumes\n' % A.version)
w('Real volumes written by Bacula %s (Debian package %s: bacula-sd / bacula-fd / bacula-director-sqlite3) '
  'on 127.0.0.1, generated %s by `scripts/lab/mkfixtures.sh` (as root, ext4). Regenerate with '
  '`sudo scripts/lab/install.sh && sudo scripts/lab/mkfixtures.sh` (volumes then differ in '
  'timestamps/session ids, the source trees are deterministic). %d volumes, %d bytes in total. '
  'The file name of each volume is also the VolumeName in its label (bls/bextract require that).\n'
  % (A.version, A.pkgversion, now, len(rows), total))
w('Other files: `MANIFEST.tsv` (this table, machine-readable), `trees/<tree>.tsv` (source-tree manifests, '
  'format in `scripts/lab/tree-manifest.py`), `bls/<volume>.{jobs,files,verbose}.txt` (golden `bls -j`, `bls`, '
  '`bls -v`), `bls/<volume>.{blocks,blockrecs}.txt` (`bls -k -v` = one line per block, `bls -k -vv` = every record '
  'of every block with FileIndex, stream and length; the volume dir is shown as `testdata`, `-vv` heap addresses as 0x0), `bls/%s-span.1+2.*.txt` (both span volumes read in sequence), '
  '`catalog/` (the lab catalog: jobs, jobmedia, media, files.tsv with the LStat/digest strings Bacula stored per '
  'file, bacula-jobs.log = all job reports), `bsr/` (bootstraps written by the jobs), `config/` (the lab '
  'configuration, WORKDIR = the temporary lab dir).\n' % ('bacula-' + A.version))
w('## Volumes\n')
w('| volume | bytes | jobs (JobId, level, files, bytes) | FileSet options | tree | device (block size) | pool (max volume bytes) |')
w('|---|---|---|---|---|---|---|')
for r in rows:
    jobs = '<br>'.join('%s JobId=%d %s, %d files, %d bytes, FileIndex %s, VolSessionId=%d VolSessionTime=%d' % (
        j['Name'], j['JobId'], j['Level'], j['JobFiles'], j['JobBytes'], j['FileIndexes'], j['VolSessionId'],
        j['VolSessionTime']) + ('; job: `%s`' % j['Extra'] if j['Extra'] else '') for j in r['jobsinfo'])
    opts = '<br>'.join('`%s`: %s' % (j['FileSet'], j['Options']) for j in r['jobsinfo'])
    trees = '<br>'.join('`trees/%s.tsv`' % t for t in r['trees'])
    w('| `%s` | %d | %s | %s | %s | %s %s (%s) | %s (%s) |' % (r['vol'], r['bytes'], jobs, opts, trees, r['device'],
                                                            r['devtype'], r['blocksize'], r['pool'], r['volbytes']))
w('\nBlocks and records per volume (from `bls -k -vv`; records by stream name as bls prints it, `contDATA` = '
  'continuation of a record split across blocks, labels by type):\n')
for r in rows:
    w('* `%s`: %d blocks; %s' % (r['vol'], r['blocks'], r['streams'].replace(',', ', ')))
w('\nsha256:\n')
w('```')
for r in rows:
    w('%s  %s' % (r['sha256'], r['vol']))
w('```\n')
w('## Fixture notes\n')
P = 'bacula-' + A.version
w('* **Source paths**: tree `T` was backed up from `%s/T` (absolute paths in the volumes; e.g. '
  '`%s/plain/data/exactly-65536.bin`; directories are recorded with a trailing `/`). The '
  'accurate chain backed up `%s/accurate` in stages 1, 2, 3 (`trees/accurate-N.tsv`).' % (A.src_root, A.src_root, A.src_root))
w('* **plain tree** (`trees/plain.tsv`): used by plain-md5, gzip-sha1, lzo-md5, smallblock-16k-md5, fifo-md5, span, '
  'interleave-2jobs. Files of exactly 65536 and 64512 bytes, a 210000-byte text file, hard links (pair, triple across '
  'dirs, a 2nd name of the 64512-byte file), symlinks incl. dangling, FIFO, char device 1,3, block device 7,0, names '
  'with space / newline / tab / quotes+backslash / UTF-8 / a non-UTF-8 byte (0xe9), modes 4755/2755/1777/0000/0444/0600, '
  'uid/gid 1234, 4321 and 4000000000/4000000001, mtimes -14182940 (1969), 0, 2222669350 (2040), 7258118400 (2200).')
w('* **sparse tree** (`trees/sparse.tsv`): sparse-md5, sparse-gzip-sha256, sparse-lzo-sha512 (`sparse = yes`): '
  '3 MiB file with data at 0, at 1.5 MiB+1 and at the end; 1 MiB files with the hole at the end / at the start / '
  'only a hole; 128 KiB of allocated zeros (also skipped by sparse=yes); dense files.')
w('* **aclxattr tree** (`trees/aclxattr.tsv`): aclxattr-md5 (`aclsupport = yes; xattrsupport = yes`): access ACLs on '
  'files, access+default ACL on a dir (and a file that inherited it), a dir with only a default ACL, user.* xattrs '
  'with text, binary (00ff10fe7f80), empty, UTF-8 and 2000-byte values, an xattr on a directory.')
w('* **interleave-2jobs**: InterleaveA (`FS-PlainMD5`) and InterleaveB (`FS-PlainNoSig`, no Options = no digest) '
  'both back up the plain tree, started together, each with `Maximum Bandwidth = %s`, through a second file daemon '
  '(client lab-fd2, `Maximum Network Buffer Size = %s`, so their data records are at most %s bytes and the '
  'throttled streams are smooth) onto a device with `Maximum Block Size = %s`. `bls -k -vv`: %s blocks (incl. the '
  'label block), %s runs of consecutive blocks of the same session (block header VolSessionId) after the label block. '
  'Catalog start times: %s (the director starts the 2nd job on the same storage a few seconds later), so the volume '
  'starts and ends with longer single-session runs. bextract needs a bootstrap (bsr/) to separate them.'
  % (A.bandwidth, A.fd2_buffer, A.fd2_buffer, A.small_block, props.get('interleave_blocks'), props.get('interleave_runs'),
     ', '.join('%s JobId=%d %s' % (j['Name'], j['JobId'], j['StartTime'])
               for r in rows if r['fx'] == 'interleave-2jobs' for j in r['jobsinfo'])))
w('* **span**: one job (Span) over `%s-span.1.vol` and `%s-span.2.vol` (pool Span, Maximum Volume Bytes = %s: '
  'the label block + 3 data blocks fill volume 1). span.1 holds the Begin Job Session (SOS) record, span.2 the End '
  'Job Session (EOS) record; span.2 has no SOS of its own. After its VOL_LABEL block, the first data block of span.2 '
  'continues the block numbering of span.1 and begins with the rest of a record split at the end of span.1 '
  '(`bls -k -vv`: `%s`). `bls/%s-span.1+2.*.txt`: both volumes read in sequence.'
  % (P, P, A.span_bytes, props.get('span2_first_record'), P))
w('* **fifo-md5**: written through a `Device Type = Fifo` device (FifoDev1) and captured from the FIFO by a reader '
  'loop (the SD opens the FIFO several times per job; only one open carries data, that segment is the volume). '
  'Unlike a File volume, its VOL_LABEL has PoolName `Default` and shares block 0 with the session label and data.')
w('* **smallblock-16k-md5**: plain tree on a device with `Maximum Block Size = %s`; largest block %s bytes, so the '
  '64 KiB data records of the big files are split over 4-5 blocks.' % (A.small_block, props.get('smallblock_max')))
w('* **accurate chain**: job Accurate (`Accurate = yes`, `signature = MD5`). 1-full: stage 1 tree. Then stage 2 '
  '(modify.txt rewritten, del/file1.txt and the dir deldir/ (with a.txt, sub/b.txt) deleted, added/ with 2 files, '
  'rename-me.txt renamed to renamed.txt, chmod.txt 0644->0600, chown.txt to 1234:1234, 4 KiB of data/random-20000.bin '
  'rewritten) -> 2-incr, with %s deleted-file entries in `bls` (`-*DELETED-`). Stage 3 (modify.txt rewritten again, '
  'added/new.txt deleted, hard/b deleted (breaks the hard-link pair), symlink-to-keep deleted, `dir3 stage3/x.txt` and '
  'stage3.txt added) -> 3-diff (relative to the Full), %s deleted-file entries. An Incremental/Differential volume '
  'holds only the changed entries (+ their parent directories) and, after them, one attributes record (UATTR) '
  'per deleted file or directory (listed by `bls` as `-*DELETED-`); `catalog/files.tsv` has these with a '
  'negative FileIndex and an all-zero LStat.' % (props.get('deleted_incr'), props.get('deleted_diff')))
w('\n## Tree manifests (`trees/*.tsv`)\n')
w('Written by `scripts/lab/tree-manifest.py` from the live source tree right before the job(s) that backed it up. '
  'Paths are relative to the backed-up directory (absolute path in the volume = source path + "/" + path; "." is '
  'the directory itself, recorded in the volume with a trailing "/"). Format:\n')
w('```')
w(tm.__doc__.split('\n--compare')[0].split('\n', 2)[2].rstrip())
w('```')
w('\n## Verification\n')
w('Each volume was restored with bextract (`scripts/lab/extract.sh`) and compared with its tree manifest by '
  '`tree-manifest.py --compare` (type, mode, uid, gid, size, mtime, sha256 / link target / rdev, hard-link groups; '
  'not xattrs/ACLs: bextract 9.6.7 ignores those streams; directory sizes never compared; Incremental/Differential '
  'with `--subset`: every restored entry matches the stage manifest, directory mtimes not compared). '
  'The `*-director` rows: restores through the lab director + FD (`scripts/lab/restore.sh`) before the lab was '
  'stopped, compared with all columns (xattrs and ACLs included; the Full+Incr / Full+Diff restores honour the '
  'deleted-file records and are compared with the complete stage-2 / stage-3 manifests, without directory mtimes).\n')
w('| check | result | manifest | restore | streams bextract ignored | bootstrap / options |')
w('|---|---|---|---|---|---|')
for v in verify:
    v += [''] * (6 - len(v))
    w('| %s | %s | %s | %s | %s | %s |' % tuple(x or '-' for x in v[:6]))
w('\n## Lab resources (verbatim; WORKDIR = temporary lab dir)\n')
used_fs = sorted({j['FileSet'] for r in rows for j in r['jobsinfo']})
used_jobs = sorted({j['Name'] for r in rows for j in r['jobsinfo']})
used_pools = sorted({r['pool'] for r in rows})
used_st = sorted({r['storage'] for r in rows})
w('```')
for n in used_fs:
    w(FILESETS[n])
for n in used_jobs:
    w(JOBS[n])
w(JOBDEFS['LabDefaults'])
for n in used_pools:
    w(POOLS[n])
for n in used_st:
    w(STORAGES[n])
w(CLIENTS['lab-fd2'])
for n in used_st:
    w('# bacula-sd.conf')
    w(DEVICES[directive(STORAGES[n], 'Device')])
w('# bacula-fd2.conf (client lab-fd2, InterleaveA/B; lab-fd is the same without the buffer size)')
w(FDS['lab-fd2'])
w('```\n')
w('## Commands\n')
w('`mkfixtures.sh` ran, per volume (WORKDIR = lab dir, scripts in `scripts/lab/`):\n')
w('```')
seen = set()
for r in rows:
    if r['cmd'] not in seen:
        seen.add(r['cmd'])
        w(r['cmd'])
w('```')
w('\nTrees: ' + ', '.join('`trees/%s.tsv` (%d entries)' % (t, tree_entries(t))
                          for t in sorted({t for r in rows for t in r['trees']})) + '.')
open(os.path.join(S, 'MANIFEST.md'), 'w').write('\n'.join(md) + '\n')
print('mkmanifest: %d volumes, %d bytes' % (len(rows), total))
