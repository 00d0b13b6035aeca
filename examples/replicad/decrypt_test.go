package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// contents maps the regular files under root to a hash of their content.
func contents(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, p)
			s := sha256.Sum256(b)
			out[rel] = hex.EncodeToString(s[:8])
		}
		return nil
	})
	return out
}

// replicate with encrypt_key_file, then decrypt: the plain tree is what
// extract restores; a tampered file is named and fails alone.
func TestReplicateEncryptedAndDecrypt(t *testing.T) {
	dir := t.TempDir()
	var k [32]byte
	rand.Read(k[:])
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(k[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(dir, "a")
	conf := writeConf(t, dir, "targets = "+a+"\nencrypt_key_file = "+keyFile+
		"\nskip_unchanged = yes\nverify_after = yes\nstate_dir = "+dir+"/state\n")
	volumes := []string{"../../bacularec/testdata/bacula-9.6.7-plain-md5.vol"}
	out, errOut, rc := replicad(t, append([]string{"replicate", "-c", conf}, volumes...)...)
	if rc != 0 || !strings.Contains(out, "target "+a+": ok:") {
		t.Fatalf("replicate rc %d\n%s\n%s", rc, out, errOut)
	}
	ref := filepath.Join(dir, "ref")
	if _, e, rc := replicad(t, append([]string{"extract", "-q", "-o", ref}, volumes...)...); rc != 0 {
		t.Fatal(e)
	}
	want := contents(t, ref)
	if len(want) < 3 {
		t.Fatalf("reference: %v", want)
	}
	// The target holds ciphertext only.
	for rel := range want {
		b, err := os.ReadFile(filepath.Join(a, rel))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte("BRCENC\x01")) {
			t.Errorf("%s: not encrypted on the target", rel)
		}
	}

	dec := filepath.Join(dir, "dec")
	out, errOut, rc = replicad(t, "decrypt", "-c", conf, a, dec)
	if rc != 0 || !strings.Contains(out, "; 0 failed") {
		t.Fatalf("decrypt rc %d\n%s\n%s", rc, out, errOut)
	}
	if got, w := tree(t, dec), tree(t, ref); got != w {
		t.Errorf("decrypted tree differs from extract:\n%s\n---\n%s", got, w)
	}
	if got := contents(t, dec); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("decrypted content differs from extract:\n%v\n%v", got, want)
	}

	// The key from a command gives the same.
	dec2 := filepath.Join(dir, "dec2")
	if out, errOut, rc = replicad(t, "decrypt", "-key-cmd", "cat "+keyFile, a, dec2); rc != 0 {
		t.Fatalf("decrypt -key-cmd rc %d\n%s\n%s", rc, out, errOut)
	}
	if got := contents(t, dec2); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("decrypted (key command) content differs from extract")
	}

	// Tamper with one file: it is named, the others are decrypted, exit 1.
	var victim string
	for rel := range want {
		if fi, err := os.Stat(filepath.Join(a, rel)); err == nil && fi.Size() > 100 && (victim == "" || rel < victim) {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 1 {
				victim = rel
			}
		}
	}
	f, err := os.OpenFile(filepath.Join(a, victim), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("X"), 80)
	f.Close()
	dec3 := filepath.Join(dir, "dec3")
	out, errOut, rc = replicad(t, "decrypt", "-key-file", keyFile, a, dec3)
	if rc != 1 || !strings.Contains(errOut, filepath.Join(a, victim)) || !strings.Contains(out, "; 1 failed") {
		t.Fatalf("tampered: rc %d\n%s\n%s", rc, out, errOut)
	}
	got := contents(t, dec3)
	for rel, h := range want {
		switch {
		case rel == victim:
			if _, ok := got[rel]; ok {
				t.Errorf("%s: tampered file decrypted", rel)
			}
		case got[rel] != h:
			t.Errorf("%s: not decrypted alongside the tampered file", rel)
		}
	}

	// A wrong key fails every file.
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, rc = replicad(t, "decrypt", "-key-file", keyFile, a, filepath.Join(dir, "dec4")); rc != 1 || !strings.Contains(errOut, "no key with the file's key id") {
		t.Errorf("wrong key: rc %d\n%s", rc, errOut)
	}
}
