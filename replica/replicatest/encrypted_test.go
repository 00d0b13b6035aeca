package replicatest_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/crypt"
	"github.com/openbrc/brc/replica"
	"github.com/openbrc/brc/replica/replicatest"
)

func newKey(t *testing.T) crypt.Key {
	var k crypt.Key
	rand.Read(k[:])
	return k
}

// encTree wraps the Tree of the target inside Encrypt: every regular file
// is decrypted for its path, a hard link for the path of the name it
// shares its ciphertext with (candidates gives them). Content that does
// not decrypt is reported as read, which the suite then flags.
func encTree(inner func(*testing.T, replica.Target) map[string]replicatest.Entry, key crypt.Key,
	candidates func(tree map[string]replicatest.Entry, p string) []string) func(*testing.T, replica.Target) map[string]replicatest.Entry {
	ring := crypt.NewKeyring(key)
	return func(t *testing.T, tg replica.Target) map[string]replicatest.Entry {
		t.Helper()
		raw := inner(t, tg)
		out := make(map[string]replicatest.Entry, len(raw))
		for p, e := range raw {
			if e.Type == bacularec.TypeReg {
				for _, lp := range append([]string{p}, candidates(raw, p)...) {
					r, err := crypt.NewReader(bytes.NewReader(e.Data), ring, lp)
					if err != nil {
						continue
					}
					if plain, err := io.ReadAll(r); err == nil {
						e.Data = plain
						break
					}
				}
			}
			out[p] = e
		}
		return out
	}
}

// sameData: in a Memory target the names of a hard link hold the same
// ciphertext (a random salt makes any other file's differ).
func sameData(tree map[string]replicatest.Entry, p string) []string {
	var out []string
	for q, e := range tree {
		if q != p && e.Type == bacularec.TypeReg && bytes.Equal(e.Data, tree[p].Data) {
			out = append(out, q)
		}
	}
	slices.Sort(out)
	return out
}

// sameInode: in a Mirror the names of a hard link share an inode.
func sameInode(tree map[string]replicatest.Entry, p string) []string {
	first := tree[p].HardLinkOf
	if first == "" {
		first = p
	}
	var out []string
	for q, e := range tree {
		if q != p && (q == first || e.HardLinkOf == first) {
			out = append(out, q)
		}
	}
	slices.Sort(out)
	return out
}

func TestEncryptedMemory(t *testing.T) {
	key := newKey(t)
	replicatest.Run(t, replicatest.Harness{
		New: func(*testing.T) replica.Target {
			return replica.Encrypt(replica.NewMemory(), key, replica.EncryptOptions{})
		},
		Tree: encTree(memoryTree, key, sameData),
		Skip: []string{replicatest.CapSparseHoles, replicatest.CapHardLinkIdentity},
	})
}

func TestEncryptedMirror(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the Mirror restores ownership, FIFOs and trusted state only as root")
	}
	key := newKey(t)
	for _, opt := range []struct {
		name  string
		m     replica.MirrorOptions
		e     replica.EncryptOptions
		index bool // both state indexes, in a catalog
	}{
		{"plain", replica.MirrorOptions{}, replica.EncryptOptions{}, false},
		{"skip-verify", replica.MirrorOptions{SkipUnchanged: true, Verify: true}, replica.EncryptOptions{SkipUnchanged: true, Verify: true}, false},
		{"skip-verify-index", replica.MirrorOptions{SkipUnchanged: true, Verify: true}, replica.EncryptOptions{SkipUnchanged: true, Verify: true}, true},
	} {
		t.Run(opt.name, func(t *testing.T) {
			replicatest.Run(t, replicatest.Harness{
				New: func(t *testing.T) replica.Target {
					root := filepath.Join(t.TempDir(), "root")
					mo, eo := opt.m, opt.e
					if opt.index {
						cat, err := replica.OpenCatalog(filepath.Join(t.TempDir(), "catalog.db"))
						if err != nil {
							t.Fatal(err)
						}
						t.Cleanup(func() { cat.Close() })
						mo.Index, eo.Index = cat.Index(root), cat.EncryptedIndex(root)
					}
					m := replica.NewMirror(root, mo)
					return replica.Limit(replica.Encrypt(m, key, eo), 1<<30)
				},
				Tree: encTree(mirrorTree, key, sameInode),
				// The ciphertext of a hole is data.
				Skip: []string{replicatest.CapSparseHoles},
			})
		})
	}
}
