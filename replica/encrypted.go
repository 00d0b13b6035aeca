package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync/atomic"
	"syscall"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/crypt"
	"github.com/openbrc/brc/internal/extract"
)

// EncryptOptions tune Encrypt.
type EncryptOptions struct {
	// Keyring holds the keys files already on the target may be encrypted
	// with (a rotated key): skip_unchanged and verification read them
	// back. Nil means the key given to Encrypt only. New files are always
	// encrypted with the key given to Encrypt.
	Keyring *crypt.Keyring
	// SkipUnchanged keeps the target's copy of a regular file whose
	// plaintext is unchanged (see Encrypt). Set it together with
	// MirrorOptions.SkipUnchanged of the wrapped Mirror (without it the
	// Mirror writes the kept ciphertext again when the copy had to be
	// read to be compared). Needs a target that can be read back (a
	// Mirror); ignored otherwise.
	SkipUnchanged bool
	// Index is the target's encrypted state index
	// (Catalog.EncryptedIndex): with SkipUnchanged, a file whose copy on
	// the target is as the index recorded it is compared with the index's
	// keyed hashes, without reading the copy. Used with a Mirror only
	// (possibly inside a Retention); nil keeps none. It is not the
	// Mirror's MirrorOptions.Index, which describes the ciphertext.
	Index EncryptedIndex
	// Verify reads every file written back once it is in place, decrypts
	// it (authenticated, for its path) and compares the keyed hashes of
	// the plaintext (those of the index, see Encrypt) with those of what
	// was streamed; a mismatch is a FileError wrapping ErrVerify, so the
	// job is not recorded as done. Files are verified as soon as the
	// Mirror has put them in place (after each of its commit batches, and
	// at End), so what waits for verification is bounded by
	// MirrorOptions.CommitFiles. A path written twice in a job is
	// verified against what was written last. Needs a Mirror; ignored
	// otherwise. MirrorOptions.Verify, which checks the ciphertext read
	// back, can be set as well.
	Verify bool
}

// Encrypt returns t with the content of every file encrypted at rest with
// key, in crypt format version 1: what t stores (and what a thief of the
// target's disks sees) is ciphertext, which only holders of the key can
// read or alter undetected. crypt.DecryptTree (replicad decrypt) restores
// a plain tree from the target for recovery.
//
// What is encrypted: the content of regular files (and of FIFOs and raw
// devices saved as data). Each file is encrypted for its logical path,
// the backed-up path after the Mirror's StripPrefix, cleaned, as the file
// lies under the target root, with a leading "/": with strip_prefix /srv,
// /srv/etc/hosts lies at ROOT/etc/hosts and is encrypted for "/etc/hosts".
// That is the path crypt.DecryptTree derives from a file's place under
// the root it is given, so a file moved or renamed on the target no longer
// decrypts. Holes are encrypted as the zeros they read as: the ciphertext
// has none, and a sparse file takes its full size plus
// crypt.EncryptedSize's overhead.
//
// What is not: names (paths, symbolic link targets), and the metadata
// (type, mode, owner, times, ACLs, xattrs, sizes up to the format's
// overhead, hard links, directories, special files, deletions), which t
// gets unchanged. An observer of the target learns the tree's shape, not
// the files' content.
//
// Hard links are kept as hard links: the names share one ciphertext,
// bound to the path of the first name (the one the backup saved the data
// with). crypt.DecryptTree, which decrypts every name for its own path,
// fails on the other names; DecryptTarget (replicad decrypt) tries the
// other names of the same inode. A hard link whose first name was later deleted from the
// target can only be decrypted for that former path.
//
// The File t receives is a copy: Stat.Size is the encrypted size, Digest
// is nil (the backup's digest is that of the plaintext), a TypeRegEmpty
// becomes TypeReg (its ciphertext is not empty); ACLs, xattrs, DigestErr
// and the rest are taken from the shared File when its content ends. The
// shared File is never written to. Memory use is constant per file (a few
// chunks of 64 KiB).
//
// SkipUnchanged: the ciphertext of a file changes at every write (a
// random salt per file), so t cannot tell by itself that a file is
// unchanged, and the BLAKE3 of the plaintext, which a clear Mirror's
// index keeps, must not be stored: anyone reading the state directory
// could then tell which files are equal, or confirm a guess of a file's
// content by hashing it. With an EncryptOptions.Index, the wrapper keeps
// its own state index instead (EncryptedEntry): per regular file, the
// stat of the encrypted file on the target (size, mtime, ctime, device,
// inode) and, per ChunkSize (1 MiB) span of the plaintext, a BLAKE3 keyed
// with a key derived from the master key (crypt.NewContentHash), over a
// salt drawn anew each time the file is hashed anew, the span's number
// and the path before the span's bytes; and the id of the key. Without
// the key no hash can be computed, and because of the salt and the path
// equal content hashes differently in two files, or in two versions of a
// file: a reader of the state directory learns sizes, times and when a
// file was rewritten, which the target shows anyway, and nothing of
// which contents are equal. After a key rotation the entries made with
// the old key are not used (their key id differs).
//
// A file whose copy has the stat its entry records, with the current
// key's id, is compared by hashing the new plaintext as it streams by:
// when every span hashes as recorded, the copy is kept, neither read nor
// written (metadata that changed is applied, the entry then recording
// the new stat). At the first span that differs, the file is encrypted
// anew, the unchanged spans before it read back from the copy by
// authenticated decryption (the stream has gone by), and its entry is
// written once it is in place. With no entry, or a copy changed behind
// the index's back (another stat), or hashes of another key, the copy is
// compared by authenticated decryption instead: when t (a Mirror) holds
// a file at the path whose size is that of the new one encrypted, the
// copy is decrypted chunk by chunk as the new content streams by; as
// long as the plaintexts are equal, the copy's own authenticated
// ciphertext is what the Mirror receives, so that with SkipUnchanged it
// finds it identical and writes nothing. At the first difference (or a
// copy that fails authentication) the Mirror's write is abandoned,
// leaving the copy as it was, and the file is encrypted anew, its
// unchanged start read back from the copy. Either way the entry is
// written afresh. Without an index every unchanged file costs a read and
// a decryption of the copy; with one, a stat. A file kept unchanged,
// either way, is given to the Mirror itself: the targets between Encrypt
// and the Mirror (a Retention) only see the files that are written.
//
// The entries are written when the Mirror has put a file in place (and
// read it back, with MirrorOptions.Verify): Encrypt hooks into the
// wrapped Mirror's index updates for that, leaving its MirrorOptions.Index
// as it was otherwise. A file the wrapper's verification finds wrong
// loses its entry.
//
// The returned Target implements Unwrapper, and StatsReporter and
// io.Closer when t does. Its Stats are t's, except Bytes, which counts
// the plaintext content bytes (holes excluded) of the files whose content
// t wrote, as a clear target would count them, and Errors, which adds the
// failed verifications.
func Encrypt(t Target, key crypt.Key, opt EncryptOptions) Target {
	ring := opt.Keyring
	if ring == nil {
		ring = crypt.NewKeyring(key)
	}
	e := &encrypted{t: t, key: key, keyID: key.ID(), ring: ring, opt: opt}
	e.lp, _ = findInner[logicalPather](t)
	e.open, _ = findInner[targetOpener](t)
	e.com, _ = findInner[committer](t)
	e.mir, _ = findInner[keeper](t)
	if opt.SkipUnchanged && opt.Index != nil && e.mir != nil && e.open != nil {
		e.idx = opt.Index
		e.pending = map[string]*pendingEntry{}
		e.mir.tapIndex(func(in Index) Index { return &indexTap{inner: in, e: e} })
	}
	sr, stats := t.(StatsReporter)
	cl, closer := t.(io.Closer)
	e.sr = sr
	switch {
	case stats && closer:
		return &encryptedStatsCloser{encrypted: e, cl: cl}
	case stats:
		return &encryptedStats{encrypted: e}
	case closer:
		return &encryptedCloser{encrypted: e, cl: cl}
	}
	return e
}

// findInner returns the first of t and the targets it wraps that
// implements I.
func findInner[I any](t Target) (I, bool) {
	for {
		if i, ok := t.(I); ok {
			return i, true
		}
		u, ok := t.(Unwrapper)
		if !ok {
			var zero I
			return zero, false
		}
		t = u.Unwrap()
	}
}

// encrypted is the Target returned by Encrypt.
type encrypted struct {
	t     Target
	key   crypt.Key
	keyID [8]byte
	ring  *crypt.Keyring
	opt   EncryptOptions
	lp    logicalPather
	open  targetOpener
	com   committer
	mir   keeper // the Mirror, or nil
	sr    StatsReporter

	// idx is the encrypted index, when in use (SkipUnchanged, a Mirror);
	// pending holds, by index key, the files given to the Mirror that it
	// has not put in place yet.
	idx     EncryptedIndex
	pending map[string]*pendingEntry

	bytes   atomic.Int64   // plaintext bytes of the content written
	vErrors atomic.Int64   // failed verifications
	verify  []toVerify     // written, not yet verified
	spare   *cipherContent // buffers of the last file, for the next
	ch      *keyedChunks   // comparisons
	vh      *keyedChunks   // verifications
	spanBuf []byte         // the span being compared (compareKeyed)
}

// toVerify is a file written whose read-back is pending.
type toVerify struct {
	path, logical, key string
	w                  written
}

// written is what was hashed of a file written: its keyed span hashes.
type written struct {
	salt   [16]byte
	chunks [][32]byte
}

type encryptedStats struct{ *encrypted }

type encryptedCloser struct {
	*encrypted
	cl io.Closer
}

type encryptedStatsCloser struct {
	*encrypted
	cl io.Closer
}

// Stats implements StatsReporter (see Encrypt).
func (e *encryptedStats) Stats() Stats { return e.stats() }

// Close implements io.Closer: it closes the wrapped target.
func (e *encryptedCloser) Close() error { return e.close(e.cl) }

// Stats implements StatsReporter (see Encrypt).
func (e *encryptedStatsCloser) Stats() Stats { return e.stats() }

// Close implements io.Closer: it closes the wrapped target.
func (e *encryptedStatsCloser) Close() error { return e.close(e.cl) }

// close closes cl, the wrapped target, which puts in place what it
// finished: the index records them.
func (e *encrypted) close(cl io.Closer) error {
	err := cl.Close()
	clear(e.pending)
	return errors.Join(err, e.flushIndex())
}

func (e *encrypted) stats() Stats {
	s := e.sr.Stats()
	s.Bytes = e.bytes.Load()
	s.Errors += e.vErrors.Load()
	return s
}

// Unwrap implements Unwrapper.
func (e *encrypted) Unwrap() Target { return e.t }

// Begin implements Target.
func (e *encrypted) Begin(ctx context.Context, job *bacularec.Job) error {
	e.verify = e.verify[:0]
	err := e.t.Begin(ctx, job)
	// Begin put in place what an unfinished job left, if anything: the
	// rest of that job never will be.
	clear(e.pending)
	return err
}

// End implements Target: the files of the job still to verify are put in
// place and verified first.
func (e *encrypted) End(ctx context.Context, job *bacularec.Job) error {
	var verr error
	if len(e.verify) > 0 {
		if e.com != nil {
			e.com.commitPending()
		}
		verr = e.runVerify()
	}
	err := e.t.End(ctx, job)
	// Whatever was not put in place by now never will be.
	clear(e.pending)
	return errors.Join(verr, err, e.flushIndex())
}

func (e *encrypted) flushIndex() error {
	if e.idx == nil {
		return nil
	}
	if err := e.idx.Flush(); err != nil {
		return fmt.Errorf("%w: %w", ErrTargetFailed, err)
	}
	return nil
}

// hasData reports whether records of type t carry content to encrypt.
func hasData(t bacularec.FileType) bool {
	switch t {
	case bacularec.TypeReg, bacularec.TypeRegEmpty, bacularec.TypeFIFO, bacularec.TypeRaw:
		return true
	}
	return false
}

// Put implements Target.
func (e *encrypted) Put(ctx context.Context, f *bacularec.File, c Content) error {
	if !hasData(f.Type) {
		return e.t.Put(ctx, f, c)
	}
	if c == nil {
		c = emptyContent{}
	}
	logical, ok := "", false
	if e.lp != nil {
		logical, ok = e.lp.logicalPath(f.Path)
	} else {
		logical, ok = cleanLogical(f.Path)
	}
	if !ok {
		// The target refuses such a path anyway; whatever it does, it
		// only ever sees ciphertext.
		logical = f.Path
	}
	var before int64
	if e.sr != nil {
		before = e.sr.Stats().Bytes
	}
	src := &plainSource{c: c, size: f.Stat.Size}
	cp := copyFile(f, src)
	src.onEOF = func() { *cp = *copyFile(f, src) }

	key := pathKey2(f.Path)
	regular := f.Type == bacularec.TypeReg || f.Type == bacularec.TypeRegEmpty
	var err error
	var w *written // nil: nothing written (kept, or failed)
	known := false
	if e.idx != nil && regular {
		var ent EncryptedEntry
		var info extract.Info
		if ent, info, known = e.lookup(f.Path, key, f.Stat.Size); known {
			w, err = e.putKnown(ctx, f, cp, src, logical, key, &ent, info)
		}
	}
	if !known {
		if sc := e.speculate(f, logical, src); sc != nil {
			w, err = e.putSpeculated(ctx, f, cp, src, logical, key, sc)
		} else {
			w, err = e.put(ctx, cp, src, logical, key, regular)
		}
	}
	if src.err != nil && errors.Is(src.err, errOverlap) {
		// The content itself cannot be encrypted in order: that file
		// only, not the stream.
		err = errors.Join(without(err, errOverlap), &FileError{Path: f.Path, Err: src.err})
	}
	if !src.eof && src.err == nil {
		// t gave up early: the shared File must still be completed.
		if derr := drain(c); derr != nil && err == nil {
			err = derr
		}
	}
	if e.sr != nil && e.sr.Stats().Bytes > before {
		e.bytes.Add(src.data)
	}
	if e.idx != nil && failedFor(err, f.Path) {
		delete(e.pending, key) // not put in place
	}
	if e.opt.Verify && w != nil && e.open != nil && !failedFor(err, f.Path) && src.eof {
		e.verify = append(e.verify, toVerify{path: f.Path, logical: logical, key: key, w: *w})
	}
	if len(e.verify) > 0 && e.com != nil && e.com.pendingFiles() == 0 {
		// Everything written is in place: verify it now, which bounds
		// what waits for verification by the target's commit batch.
		err = errors.Join(err, e.runVerify())
	}
	return err
}

// putKnown puts the regular file f, whose copy on the target is as its
// entry ent in the encrypted index records it (stat info): see Encrypt.
func (e *encrypted) putKnown(ctx context.Context, f, cp *bacularec.File, src *plainSource, logical, key string,
	ent *EncryptedEntry, info extract.Info) (*written, error) {
	at, span, err := e.compareKeyed(src, key, ent)
	if err != nil {
		// The content failed, not the target, whose copy is left as it
		// was.
		if ce := (*contentError)(nil); !errors.As(err, &ce) {
			err = &contentError{err}
		}
		return nil, err
	}
	if at < 0 {
		meta := metaHash(cp)
		err = e.mir.keepUnchanged(ctx, cp, meta == ent.Meta)
		if meta != ent.Meta {
			err = errors.Join(err, e.refresh(f.Path, key, ent, meta, info, err))
		}
		return nil, err
	}
	// Changed from span at on: written anew (a new salt changes every
	// byte), the spans before it, equal, read back from the copy. The
	// entry goes: it is written again once the new file is in place.
	e.idx.Delete(key)
	in := io.MultiReader(bytes.NewReader(span), src)
	if at > 0 {
		pre, err := e.openPrefix(f.Path, logical, int64(at)*ChunkSize)
		if err != nil {
			// What was read of the content is gone: that file fails
			// (and is sent again with the job), the copy is left alone.
			return nil, &FileError{Path: f.Path, Err: fmt.Errorf("%w: %w", errCopyRead, err)}
		}
		defer pre.f.Close()
		in = io.MultiReader(pre, bytes.NewReader(span), src)
	}
	cp2 := copyFile(f, src)
	src.onEOF = func() { *cp2 = *copyFile(f, src) }
	w, err := e.put(ctx, cp2, in, logical, key, true)
	if errors.Is(err, errCopyRead) {
		// The copy failed (authentication, I/O) while its start was
		// read: t abandoned the file; the file fails, not the target.
		var cause error
		for _, x := range flatten(err) {
			if errors.Is(x, errCopyRead) {
				cause = x
			}
		}
		err = errors.Join(without(err, errCopyRead), &FileError{Path: f.Path, Err: cause})
		w = nil
	}
	return w, err
}

// refresh records in ent, after the Mirror applied the metadata of the
// copy anew (err is how that went), the copy's new stat: the same file
// (device, inode, size) holds the same content. Anything else makes the
// entry go, and the copy is compared by decryption next time.
func (e *encrypted) refresh(path, key string, ent *EncryptedEntry, meta uint64, before extract.Info, err error) error {
	now, serr := e.mir.statTarget(path)
	switch {
	case serr != nil || now.Dev != before.Dev || now.Ino != before.Ino || now.Size != before.Size:
		return e.idx.Delete(key)
	case err != nil:
		// The metadata was not (all) applied: the entry keeps the old
		// hash, so it is applied again, if it still describes the copy.
		if !ent.matches(now) {
			return e.idx.Delete(key)
		}
		return nil
	}
	ent.setStat(now)
	ent.Meta = meta
	if err := e.idx.Put(key, *ent); err != nil {
		return fmt.Errorf("%w: %w", ErrTargetFailed, err)
	}
	return nil
}

// putSpeculated puts the regular file f, comparing it with the target's
// copy by decryption (sc): see Encrypt.
func (e *encrypted) putSpeculated(ctx context.Context, f, cp *bacularec.File, src *plainSource, logical, key string,
	sc *specContent) (*written, error) {
	defer sc.old.Close()
	if e.idx != nil {
		if e.ch == nil {
			e.ch = newKeyedChunks(e.key)
		}
		e.ch.start(newSalt(), key)
		sc.kh = e.ch
	}
	// A copy found unchanged is the Mirror's business only: a Retention
	// around it would keep a version of it, to drop it at End.
	var to Target = e.t
	if e.mir != nil {
		to = e.mir
	}
	err := to.Put(ctx, cp, sc)
	if !sc.changed || src.err != nil {
		// The Mirror has its copy still (or the content failed).
		if !sc.changed && e.idx != nil && src.eof && src.err == nil && !failedFor(err, f.Path) {
			err = errors.Join(err, e.record(f.Path, key, sc, metaHash(cp)))
		}
		return nil, err
	}
	if err = without(err, errChanged); IsTargetFailure(err) {
		return nil, err
	}
	// Changed: the Mirror left its copy alone. Encrypt anew (a new salt
	// changes every byte), the unchanged start read back from the copy.
	prefix := io.NewSectionReader(sc.ra, 0, sc.chunk*crypt.ChunkSize)
	in := io.MultiReader(prefix, bytes.NewReader(sc.cb), src)
	cp2 := copyFile(f, src)
	src.onEOF = func() { *cp2 = *copyFile(f, src) }
	w, perr := e.put(ctx, cp2, in, logical, key, true)
	return w, errors.Join(err, perr)
}

// record writes the entry of a copy found unchanged by decryption: its
// stat, if the file at the path is still the one decrypted.
func (e *encrypted) record(path, key string, sc *specContent, meta uint64) error {
	chunks := sc.kh.finish()
	fi, ferr := sc.old.Stat()
	now, serr := e.mir.statTarget(path)
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ferr != nil || serr != nil || !ok || uint64(st.Dev) != now.Dev || st.Ino != now.Ino ||
		now.Size != crypt.EncryptedSize(sc.total) {
		return e.idx.Delete(key)
	}
	ent := EncryptedEntry{KeyID: e.keyID, Plain: sc.total, Meta: meta, Salt: sc.kh.salt, Chunks: chunks}
	ent.setStat(now)
	if err := e.idx.Put(key, ent); err != nil {
		return fmt.Errorf("%w: %w", ErrTargetFailed, err)
	}
	return nil
}

// put gives t the encryption of the plaintext in. With the encrypted
// index (a regular file) or verification, the plaintext is hashed on the
// way, and what was hashed returned.
func (e *encrypted) put(ctx context.Context, cp *bacularec.File, in io.Reader, logical, key string, regular bool) (*written, error) {
	cc, err := newCipherContent(in, e.key, logical, e.spare)
	if err != nil {
		return nil, err
	}
	if e.idx != nil && regular {
		cc.pe = e.expect(key)
	}
	if cc.pe != nil || e.opt.Verify && e.open != nil {
		if cc.kh == nil {
			cc.kh = newKeyedChunks(e.key)
		}
		cc.kh.start(newSalt(), key)
		cc.hashing = true
	}
	err = e.t.Put(ctx, cp, cc)
	// The buffers and the hasher serve the next file: one Put at a time.
	e.spare = cc
	if !cc.hashing || !cc.done || cc.err != nil {
		return nil, err
	}
	return &written{salt: cc.kh.salt, chunks: cc.chunks}, err
}

// failedFor reports whether err concerns path (or the whole target).
func failedFor(err error, path string) bool {
	if err == nil {
		return false
	}
	fes := FileErrors(err)
	if fes == nil {
		return true
	}
	for _, fe := range fes {
		if fe.Path == path {
			return true
		}
	}
	return false
}

// runVerify reads back the files to verify, which are in place.
func (e *encrypted) runVerify() error {
	var errs []error
	var later map[string]bool
	for i := len(e.verify) - 1; i >= 0; i-- {
		v := e.verify[i]
		// A path written twice in a job holds what was written last.
		if i < len(e.verify)-1 {
			if later == nil {
				later = map[string]bool{e.verify[len(e.verify)-1].path: true}
			}
			if later[v.path] {
				continue
			}
			later[v.path] = true
		}
		if err := e.verifyOne(v); err != nil {
			e.vErrors.Add(1)
			errs = append(errs, &FileError{Path: v.path, Err: err})
			if e.idx != nil {
				e.forget(v.key)
			}
		}
	}
	e.verify = e.verify[:0]
	return errors.Join(errs...)
}

func (e *encrypted) verifyOne(v toVerify) error {
	f, err := e.open.openTarget(v.path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	defer f.Close()
	r, err := crypt.NewReader(f, e.ring, v.logical)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	if e.vh == nil {
		e.vh = newKeyedChunks(e.key)
	}
	e.vh.start(v.w.salt, v.key)
	if _, err := io.Copy(e.vh, r); err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	if !slices.Equal(e.vh.finish(), v.w.chunks) {
		return fmt.Errorf("%w: plaintext read back differs from what was written", ErrVerify)
	}
	return nil
}

// copyFile returns the File the wrapped target gets for f: a copy with
// the encrypted size, no digest, and the type of a file with content.
// Until f's content has ended, only the fields of its attributes record
// are copied: the others (ACLs, xattrs, digest, counts) are being filled
// by the reader meanwhile.
func copyFile(f *bacularec.File, src *plainSource) *bacularec.File {
	var cp bacularec.File
	if src.eof {
		cp = *f
	} else {
		cp = bacularec.File{Job: f.Job, FileIndex: f.FileIndex, Type: f.Type, Path: f.Path, Link: f.Link,
			Stat: f.Stat, AttrEx: f.AttrEx, DeltaSeq: f.DeltaSeq, AttrStream: f.AttrStream}
	}
	cp.Digest = nil
	if cp.Type == bacularec.TypeRegEmpty {
		cp.Type = bacularec.TypeReg
	}
	cp.Stat.Size = crypt.EncryptedSize(max(f.Stat.Size, src.pos, src.end))
	return &cp
}

// without returns err without the errors that match sentinel (the
// wrapper's own, come back through t).
func without(err, sentinel error) error {
	if err == nil {
		return nil
	}
	var keep []error
	for _, e := range flatten(err) {
		if e != nil && !errors.Is(e, sentinel) {
			keep = append(keep, e)
		}
	}
	return errors.Join(keep...)
}

var (
	// errChanged stops t's write of a file found changed while it was
	// being given the copy's ciphertext.
	errChanged = errors.New("replica: encrypted content changed")
	// errOverlap: content pieces not in increasing order.
	errOverlap = errors.New("replica: content pieces overlap: cannot be encrypted in order")
)

type emptyContent struct{}

func (emptyContent) Next() (int64, []byte, error) { return 0, nil, io.EOF }

// plainSource reads the plaintext of a Content in order, holes as zeros,
// up to the file's size.
type plainSource struct {
	c     Content
	size  int64  // the record's size: a trailing hole up to it
	pos   int64  // bytes read
	off   int64  // offset of piece
	piece []byte // what is left of the current piece
	end   int64  // end of the furthest piece
	data  int64  // bytes of pieces (holes excluded)
	eof   bool   // c returned io.EOF
	err   error  // c failed (sticky)
	onEOF func()
}

func (s *plainSource) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	for len(s.piece) == 0 && !s.eof {
		off, b, err := s.c.Next()
		if err == io.EOF {
			s.eof = true
			if s.onEOF != nil {
				s.onEOF()
			}
			break
		}
		if err != nil {
			s.err = err
			return 0, err
		}
		if len(b) == 0 {
			continue
		}
		if off < s.pos {
			s.err = &contentError{fmt.Errorf("%w (piece at %d after %d)", errOverlap, off, s.pos)}
			return 0, s.err
		}
		s.off, s.piece = off, b
		s.data += int64(len(b))
		s.end = max(s.end, off+int64(len(b)))
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	switch {
	case len(s.piece) > 0 && s.pos < s.off: // a hole before the piece
		n = int(min(int64(len(p)), s.off-s.pos))
		clear(p[:n])
	case len(s.piece) > 0:
		n = copy(p, s.piece)
		s.piece = s.piece[n:]
		s.off += int64(n)
	case s.pos < s.size: // a trailing hole
		n = int(min(int64(len(p)), s.size-s.pos))
		clear(p[:n])
	default:
		return 0, io.EOF
	}
	s.pos += int64(n)
	return n, nil
}

// fill reads r into p until p is full (nil error), r ends (io.EOF) or r
// fails. Unlike io.ReadFull it never turns an error of r, such as a
// content cut short with io.ErrUnexpectedEOF, into an end.
func fill(r io.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// sink collects what the crypt writer writes, handed out as pieces.
type sink struct{ b []byte }

func (s *sink) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

// cipherContent is the Content t gets: the encryption of in, in pieces
// of one or two chunks.
type cipherContent struct {
	in     io.Reader
	w      io.WriteCloser
	out    sink
	plain  []byte
	off    int64 // ciphertext offset of the next piece
	handed bool  // out.b was handed out
	done   bool
	err    error
	// With hashing, kh hashes the plaintext, and chunks are its sums once
	// done; pe, if not nil, gets them for the encrypted index.
	hashing bool
	kh      *keyedChunks
	chunks  [][32]byte
	pe      *pendingEntry
}

func newCipherContent(in io.Reader, key crypt.Key, logical string, reuse *cipherContent) (*cipherContent, error) {
	cc := &cipherContent{in: in}
	if reuse != nil {
		cc.plain, cc.out.b, cc.kh = reuse.plain, reuse.out.b[:0], reuse.kh
	} else {
		cc.plain = make([]byte, crypt.ChunkSize)
		cc.out.b = make([]byte, 0, 2*crypt.EncryptedSize(crypt.ChunkSize))
	}
	w, err := crypt.NewWriter(&cc.out, key, logical) // the header, now
	if err != nil {
		return nil, err
	}
	cc.w = w
	return cc, nil
}

// Next implements Content.
func (cc *cipherContent) Next() (int64, []byte, error) {
	if cc.err != nil {
		return 0, nil, cc.err
	}
	if cc.handed {
		cc.off += int64(len(cc.out.b))
		cc.out.b = cc.out.b[:0]
		cc.handed = false
	}
	for len(cc.out.b) < crypt.ChunkSize && !cc.done {
		n, err := fill(cc.in, cc.plain)
		if n > 0 {
			if cc.hashing {
				cc.kh.Write(cc.plain[:n])
			}
			cc.w.Write(cc.plain[:n]) // to memory: cannot fail
			clear(cc.plain[:n])
		}
		switch err {
		case nil:
		case io.EOF:
			cc.w.Close()
			cc.done = true
			if cc.hashing {
				// Before t ends the file, and so before it can be put
				// in place and indexed.
				cc.chunks = cc.kh.finish()
				if cc.pe != nil {
					cc.pe.salt, cc.pe.chunks, cc.pe.plain, cc.pe.ready = cc.kh.salt, cc.chunks, cc.kh.n, true
				}
			}
		default:
			cc.err = err
			return 0, nil, err
		}
	}
	if len(cc.out.b) == 0 {
		return 0, nil, io.EOF
	}
	cc.handed = true
	return cc.off, cc.out.b, nil
}

// speculate returns the Content that gives t the ciphertext of its own
// copy of f while the plaintext is the same, or nil when there is no copy
// to compare with.
func (e *encrypted) speculate(f *bacularec.File, logical string, src *plainSource) *specContent {
	if !e.opt.SkipUnchanged || e.open == nil || (f.Type != bacularec.TypeReg && f.Type != bacularec.TypeRegEmpty) {
		return nil
	}
	old, err := e.open.openTarget(f.Path)
	if err != nil {
		return nil
	}
	fi, err := old.Stat()
	if err != nil || fi.Size() != crypt.EncryptedSize(f.Stat.Size) {
		old.Close()
		return nil
	}
	cpt := &capture{r: old}
	ra, err := crypt.NewReaderAt(cpt, fi.Size(), e.ring, logical)
	if err != nil {
		old.Close()
		return nil
	}
	return &specContent{src: src, old: old, cap: cpt, ra: ra, oldSize: fi.Size(),
		cb: make([]byte, 0, crypt.ChunkSize), ob: make([]byte, crypt.ChunkSize)}
}

// Layout of format version 1 (crypt's package documentation).
var (
	encChunk = crypt.EncryptedSize(2*crypt.ChunkSize) - crypt.EncryptedSize(crypt.ChunkSize)
	encHead  = crypt.EncryptedSize(0) - (encChunk - crypt.ChunkSize)
)

// capture is the io.ReaderAt the copy is decrypted through: it keeps
// the bytes of the reads, so that the ciphertext given to t is the very
// one that was authenticated, not bytes read again.
type capture struct {
	r     io.ReaderAt
	head  []byte // the header, read first
	final struct {
		off int64
		b   []byte
	} // the final chunk, authenticated by NewReaderAt
	last struct {
		off int64
		b   []byte
	} // the latest chunk read
}

func (c *capture) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	switch {
	case c.head == nil:
		c.head = bytes.Clone(p[:n])
	case c.final.b == nil:
		c.final.off, c.final.b = off, bytes.Clone(p[:n])
	default:
		c.last.off, c.last.b = off, append(c.last.b[:0], p[:n]...)
	}
	return n, err
}

// chunk returns the ciphertext of chunk i as captured, or nil.
func (c *capture) chunk(i int64) []byte {
	off := encHead + i*encChunk
	switch {
	case c.final.b != nil && c.final.off == off:
		return c.final.b
	case c.last.b != nil && c.last.off == off:
		return c.last.b
	}
	return nil
}

// specContent gives t the ciphertext of its copy chunk by chunk, each
// once the new plaintext of the chunk was found equal to the copy's.
type specContent struct {
	src     *plainSource
	old     *os.File
	cap     *capture
	ra      *crypt.ReaderAt
	oldSize int64
	cb      []byte // new plaintext of the chunk being compared
	ob      []byte
	out     []byte
	chunk   int64 // chunks given
	total   int64
	eof     bool
	changed bool // cb differs from chunk `chunk` of the copy
	err     error
	kh      *keyedChunks // hashes the plaintext for the index, if not nil
}

func (s *specContent) Next() (int64, []byte, error) {
	if s.err != nil {
		return 0, nil, s.err
	}
	if s.eof {
		return 0, nil, io.EOF
	}
	n, err := fill(s.src, s.cb[:crypt.ChunkSize])
	switch err {
	case nil:
	case io.EOF:
		s.eof = true
	default:
		s.err = err
		return 0, nil, err
	}
	s.cb = s.cb[:n]
	s.total += int64(n)
	if s.kh != nil {
		s.kh.Write(s.cb)
	}
	if n == 0 && s.eof && s.total > 0 {
		// The plaintext ended with the previous (full) chunk.
		if s.total != s.ra.Size() {
			return s.differ()
		}
		return 0, nil, io.EOF
	}
	if s.eof && s.total != s.ra.Size() || s.total > s.ra.Size() {
		return s.differ()
	}
	m, rerr := s.ra.ReadAt(s.ob[:n], s.chunk*crypt.ChunkSize)
	if m != n || rerr != nil && rerr != io.EOF || !bytes.Equal(s.ob[:n], s.cb) {
		return s.differ()
	}
	enc := s.cap.chunk(s.chunk)
	if enc == nil {
		return s.differ()
	}
	start := encHead + s.chunk*encChunk
	s.out = s.out[:0]
	if s.chunk == 0 {
		s.out = append(s.out, s.cap.head...)
		start = 0
	}
	s.out = append(s.out, enc...)
	s.chunk++
	s.cb = s.cb[:0]
	return start, s.out, nil
}

func (s *specContent) differ() (int64, []byte, error) {
	s.changed = true
	s.err = &contentError{errChanged}
	return 0, nil, s.err
}
