package bacularec

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"hash"
	"slices"

	"github.com/zeebo/xxh3"
)

// Verifier hashes a file's content as it goes by and checks it against the
// file's digest record. Files uses one per file; a caller that wants the
// hashing done elsewhere, for instance on the goroutine that writes the
// file, turns that off with Files.SetVerify(false) and uses
// Files.NewVerifier instead.
//
// The digest record of a file comes after its content, so the algorithm to
// compute is the one the job's previous files carried; for a job's first
// file every supported one is computed.
type Verifier struct {
	hashes []namedHash
	n      int64 // bytes hashed
}

type namedHash struct {
	algo string
	h    hash.Hash
}

var allAlgos = []string{"MD5", "SHA1", "SHA256", "SHA512", "XXH3-64"}

// newVerifier computes algo; "" means every supported algorithm, "-" none.
func newVerifier(algo string) *Verifier {
	v := &Verifier{}
	switch algo {
	case "-":
	case "":
		for _, a := range allAlgos {
			v.hashes = append(v.hashes, namedHash{a, newHash(a)})
		}
	default:
		v.hashes = append(v.hashes, namedHash{algo, newHash(algo)})
	}
	return v
}

// Write feeds a piece of content, in file order. The file daemon hashes the
// buffers it sends, so the all-zero buffers a sparse file skips are not
// part of the digest (verified on 9.6.7 volumes): feed only the pieces.
func (v *Verifier) Write(p []byte) {
	for _, h := range v.hashes {
		h.h.Write(p)
	}
	v.n += int64(len(p))
}

// Check compares f's digest record, once known, with the content fed so
// far and sets f.DigestChecked and, on a mismatch, f.DigestErr (a
// *DigestError). A hard link's digest is a copy of its first name's and is
// not checked; nor is a digest of an algorithm that was not computed.
func (v *Verifier) Check(f *File) {
	if f.Digest == nil || f.Type == TypeLinkSaved {
		return
	}
	algo := hashOf(f.Digest.Algo)
	i := slices.IndexFunc(v.hashes, func(h namedHash) bool { return h.algo == algo })
	if i < 0 {
		if v.n > 0 {
			return // not computed: the job switched algorithm
		}
		if h := newHash(algo); h != nil { // empty content
			v.hashes = append(v.hashes, namedHash{algo, h})
			i = len(v.hashes) - 1
		} else {
			return
		}
	}
	var got []byte
	switch f.Digest.Algo {
	case "XXH3-64":
		got = binary.BigEndian.AppendUint64(nil, v.hashes[i].h.(*xxh3.Hasher).Sum64())
	case "XXH3-128":
		s := v.hashes[i].h.(*xxh3.Hasher).Sum128().Bytes()
		got = s[:]
	default:
		got = v.hashes[i].h.Sum(nil)
	}
	f.DigestChecked = true
	if !bytes.Equal(got, f.Digest.Sum) {
		f.DigestErr = &DigestError{Path: f.Path, Algo: f.Digest.Algo, Want: f.Digest.Sum, Got: got}
	}
}

// hashOf names the hash state that computes a digest algorithm: one xxh3
// state gives both the 64- and the 128-bit sums.
func hashOf(algo string) string {
	if algo == "XXH3-128" {
		return "XXH3-64"
	}
	return algo
}

func newHash(algo string) hash.Hash {
	switch algo {
	case "MD5":
		return md5.New()
	case "SHA1":
		return sha1.New()
	case "SHA256":
		return sha256.New()
	case "SHA512":
		return sha512.New()
	case "XXH3-64", "XXH3-128":
		return xxh3.New()
	}
	return nil
}

// SetVerify turns the digest checks of Files on (the default) or off. Off,
// File.Digest is still filled in but File.DigestChecked stays false: the
// caller checks with a Verifier from NewVerifier. Call it before the first
// Next.
func (f *Files) SetVerify(on bool) { f.noVerify = !on }

// NewVerifier returns a Verifier for a file just returned in a KindFile
// item, computing the algorithm the file's digest record is expected to
// use. Call it before the next call to Next.
func (f *Files) NewVerifier(file *File) *Verifier {
	algo := ""
	if s := f.sessions[file.Job.Session]; s != nil {
		algo = s.algo
	}
	return newVerifier(algo)
}
