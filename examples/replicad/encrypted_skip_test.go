package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"

	"github.com/openbrc/brc/crypt"
	"github.com/openbrc/brc/replica"
)

// replicate with a key and skip_unchanged keeps the encrypted state
// index in the catalog: a replay writes nothing and skips every file,
// each indexed with the stat of its ciphertext on the target; a file
// replaced behind replicad's back is found by its stat and rewritten.
func TestReplicateEncryptedSkipUnchanged(t *testing.T) {
	dir := t.TempDir()
	var key crypt.Key
	rand.Read(key[:])
	a := filepath.Join(dir, "a")
	conf := writeConf(t, dir, "targets = "+a+"\nencrypt_key = "+hex.EncodeToString(key[:])+
		"\nskip_unchanged = yes\nverify_after = yes\nstate_dir = "+dir+"/state\n")
	vol := "../../bacularec/testdata/bacula-9.6.7-plain-md5.vol"
	if out, errOut, rc := replicad(t, "replicate", "-c", conf, vol); rc != 0 {
		t.Fatalf("replicate rc %d\n%s\n%s", rc, out, errOut)
	}
	line := regexp.MustCompile(`target .*: ok: \d+ files, \d+ bytes sent, (\d+) written, (\d+) unchanged skipped, 0 failed`)
	counts := func(out string) (written, skipped int) {
		m := line.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no target summary in\n%s", out)
		}
		w, _ := strconv.Atoi(m[1])
		s, _ := strconv.Atoi(m[2])
		return w, s
	}

	// The regular files on the target, one name per inode.
	files := map[uint64]string{}
	filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		var st syscall.Stat_t
		if err == nil && d.Type().IsRegular() && syscall.Lstat(p, &st) == nil {
			files[st.Ino] = p
		}
		return nil
	})
	if len(files) < 10 {
		t.Fatalf("target holds %d files", len(files))
	}

	out, errOut, rc := replicad(t, "replicate", "-replay", "-c", conf, vol)
	if w, s := counts(out); rc != 0 || w != 0 || s < len(files) {
		t.Fatalf("replay: rc %d, %d written, %d skipped (%d files)\n%s\n%s", rc, w, s, len(files), out, errOut)
	}

	cat, err := replica.OpenCatalog(filepath.Join(dir, "state", "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	idx := cat.EncryptedIndex(a)
	indexed := 0
	var victim string
	filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(a, p)
		e, ok, gerr := idx.Get("/" + rel)
		if gerr != nil || !ok {
			return nil // another name of a hard link
		}
		var st syscall.Stat_t
		syscall.Lstat(p, &st)
		if e.KeyID != key.ID() || e.Ino != st.Ino || e.Size != st.Size || e.Ctime != st.Ctim.Nano() || e.Mtime != st.Mtim.Nano() {
			t.Errorf("/%s: entry %+v does not describe the file (ino %d size %d)", rel, e, st.Ino, st.Size)
		}
		indexed++
		if st.Nlink == 1 && st.Size > 1000 && (victim == "" || rel < victim) {
			victim = rel
		}
		return nil
	})
	cat.Close()
	if indexed < len(files) {
		t.Errorf("%d files indexed of %d", indexed, len(files))
	}

	// Replace one file with another valid ciphertext (same key, path and
	// size, other content): only its stat tells.
	dst := filepath.Join(a, victim)
	orig := decrypt(t, dst, key, "/"+victim)
	other := bytes.Clone(orig)
	other[0] ^= 0xff
	var b bytes.Buffer
	w, _ := crypt.NewWriter(&b, key, "/"+victim)
	w.Write(other)
	w.Close()
	if err := os.WriteFile(dst+".new", b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dst+".new", dst); err != nil {
		t.Fatal(err)
	}
	out, errOut, rc = replicad(t, "replicate", "-replay", "-c", conf, vol)
	if w, s := counts(out); rc != 0 || w != len(orig) || s != len(files)-1 {
		t.Errorf("after replacing %s: rc %d, %d written (want %d), %d skipped\n%s\n%s", victim, rc, w, len(orig), s, out, errOut)
	}
	if got := decrypt(t, dst, key, "/"+victim); !bytes.Equal(got, orig) {
		t.Errorf("%s: not repaired", victim)
	}
}

func decrypt(t *testing.T, p string, key crypt.Key, logical string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := crypt.NewReader(f, crypt.NewKeyring(key), logical)
	if err != nil {
		t.Fatal(fmt.Errorf("%s: %w", p, err))
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
