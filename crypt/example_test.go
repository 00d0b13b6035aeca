package crypt_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"

	"github.com/openbrc/brc/crypt"
)

// Encrypt a file for its logical path, then decrypt it; the same bytes
// under another path do not decrypt.
func Example() {
	var key crypt.Key // in production: crypt.KeyFromFile or crypt.KeyFromCommand
	rand.Read(key[:])
	ring := crypt.NewKeyring(key)

	var enc bytes.Buffer
	w, err := crypt.NewWriter(&enc, ring.Current(), "/etc/motd")
	if err != nil {
		log.Fatal(err)
	}
	io.WriteString(w, "hello, world\n")
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("encrypted size:", enc.Len(), crypt.EncryptedSize(13))

	r, err := crypt.NewReader(bytes.NewReader(enc.Bytes()), ring, "/etc/motd")
	if err != nil {
		log.Fatal(err)
	}
	plain, err := io.ReadAll(r)
	fmt.Printf("%q %v\n", plain, err)

	r, _ = crypt.NewReader(bytes.NewReader(enc.Bytes()), ring, "/etc/issue")
	_, err = io.ReadAll(r)
	fmt.Println("moved:", errors.Is(err, crypt.ErrAuth))
	// Output:
	// encrypted size: 76 76
	// "hello, world\n" <nil>
	// moved: true
}
