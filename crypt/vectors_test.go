package crypt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors-v1.json (only for a new format version)")

const vectorFile = "testdata/vectors-v1.json"

// vectors pins format version 1: same key, salt, path and plaintext must
// give these exact bytes. A failure here means the format changed, which
// needs a new version byte, not new vectors.
type vectors struct {
	Comment     string   `json:"comment"`
	Key         string   `json:"key"`
	KeyID       string   `json:"key_id"`
	ContentHash string   `json:"content_hash_abc"`
	Vectors     []vector `json:"vectors"`
}

type vector struct {
	Name  string `json:"name"`
	Path  string `json:"path"`
	Salt  string `json:"salt"`
	Plain string `json:"plaintext,omitempty"` // hex; else PlainSize bytes i%251
	Size  int    `json:"plaintext_size"`
	// Ciphertext in hex, or only its SHA-256 for the large ones.
	Cipher       string `json:"ciphertext,omitempty"`
	CipherSHA256 string `json:"ciphertext_sha256,omitempty"`
}

func (v vector) plaintext() []byte {
	if v.Plain != "" || v.Size == 0 {
		b, _ := hex.DecodeString(v.Plain)
		return b
	}
	b := make([]byte, v.Size)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func saltHex(seed byte) string {
	s := make([]byte, saltSize)
	for i := range s {
		s[i] = seed + byte(i)
	}
	return hex.EncodeToString(s)
}

func TestVectors(t *testing.T) {
	key, _ := ParseKey(testKeyHex)
	id := key.ID()
	h := NewContentHash(key)
	h.Write([]byte("abc"))
	want := vectors{
		Comment: "openbrc crypt format v1. The key and salts are public test constants.",
		Key:     testKeyHex, KeyID: hex.EncodeToString(id[:]), ContentHash: hex.EncodeToString(h.Sum(nil)),
		Vectors: []vector{
			{Name: "empty", Path: "/etc/empty", Salt: saltHex(0x20)},
			{Name: "hello", Path: "/etc/motd", Salt: saltHex(0x40), Plain: hex.EncodeToString([]byte("hello, world\n")), Size: 13},
			{Name: "one-full-chunk", Path: "/srv/a", Salt: saltHex(0x60), Size: ChunkSize},
			{Name: "two-chunks", Path: "/srv/b b/é", Salt: saltHex(0x80), Size: ChunkSize + 1},
		},
	}
	for i := range want.Vectors {
		v := &want.Vectors[i]
		salt, _ := hex.DecodeString(v.Salt)
		var buf bytes.Buffer
		w, err := newWriter(&buf, key, v.Path, salt)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(v.plaintext())
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if buf.Len() <= 256 {
			v.Cipher = hex.EncodeToString(buf.Bytes())
		} else {
			v.CipherSHA256 = fmt.Sprintf("%x", sha256.Sum256(buf.Bytes()))
		}
	}
	if *update {
		b, _ := json.MarshalIndent(want, "", "\t")
		if err := os.WriteFile(vectorFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(vectorFile)
	if err != nil {
		t.Fatal(err)
	}
	var got vectors
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Key != want.Key || got.KeyID != want.KeyID || got.ContentHash != want.ContentHash || len(got.Vectors) != len(want.Vectors) {
		t.Fatalf("key id or content hash changed:\n got %+v\nwant %+v", got, want)
	}
	for i, g := range got.Vectors {
		if g != want.Vectors[i] {
			t.Errorf("vector %s changed:\n got %+v\nwant %+v", g.Name, g, want.Vectors[i])
		}
		if g.Cipher == "" {
			continue
		}
		// The stored bytes decrypt, so the reader is pinned too.
		ct, _ := hex.DecodeString(g.Cipher)
		p, err := decrypt(NewKeyring(key), g.Path, ct)
		if err != nil || !bytes.Equal(p, g.plaintext()) {
			t.Errorf("vector %s: decrypted %q, %v", g.Name, p, err)
		}
	}
}
