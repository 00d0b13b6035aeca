package crypt

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/zeebo/blake3"

	"github.com/openbrc/brc/internal/run"
)

// Key is a 256-bit master key. Its String and Format methods print only
// its id, so a key passed to a logger by mistake does not leak.
type Key [32]byte

// ParseKey decodes a key written as exactly 64 hexadecimal characters
// (either case, nothing else: no spaces, no newline). Errors wrap
// ErrKeyFormat and never contain the input.
func ParseKey(s string) (Key, error) { return parseHex(s) }

// parseHex is ParseKey for strings and byte slices: a key read from a
// file or a command stays in a buffer that can be cleared, with no string
// copy left behind.
func parseHex[T string | []byte](s T) (Key, error) {
	var k Key
	if len(s) != 2*len(k) {
		return Key{}, fmt.Errorf("%w (got %d characters)", ErrKeyFormat, len(s))
	}
	for i := 0; i < len(s); i++ {
		if fromHex(s[i]) < 0 {
			return Key{}, fmt.Errorf("%w (non-hexadecimal character at position %d)", ErrKeyFormat, i+1)
		}
	}
	for i := range k {
		k[i] = byte(fromHex(s[2*i])<<4 | fromHex(s[2*i+1]))
	}
	return k, nil
}

func fromHex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// ID returns the key id written in the header of every file encrypted
// with k: HMAC-SHA256(k, "openbrc key id") truncated to 8 bytes. It
// identifies the key without revealing anything about it.
func (k Key) ID() [8]byte {
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte("openbrc key id"))
	var id [8]byte
	copy(id[:], m.Sum(nil))
	return id
}

// String returns "crypt.Key(ID)", the id in hex: never the key.
func (k Key) String() string {
	id := k.ID()
	return "crypt.Key(" + hex.EncodeToString(id[:]) + ")"
}

// Format prints String for every verb, %x and %d included.
func (k Key) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// maxKeyFile bounds what KeyFromFile reads: a key file is 64 characters
// and some whitespace, anything much bigger is not one.
const maxKeyFile = 4096

// KeyFromFile reads a key file: 64 hexadecimal characters, surrounding
// whitespace allowed. The file must be owned by the effective user and
// have no permission bits for group or others, else the error wraps
// ErrKeyFileOwner or ErrKeyFileMode; the checks are made on the open
// file, so a swap after them does not matter. Errors are *fs.PathError.
func KeyFromFile(path string) (Key, error) {
	// O_NONBLOCK: a FIFO planted at path must not hang the open; it is
	// refused below like anything else that is not a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return Key{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Key{}, err
	}
	perr := func(err error) error { return &fs.PathError{Op: "key file", Path: path, Err: err} }
	if !fi.Mode().IsRegular() {
		return Key{}, perr(fmt.Errorf("%w (not a regular file)", ErrKeyFormat))
	}
	uid, err := fileOwner(fi)
	if err != nil {
		return Key{}, perr(err)
	}
	if uid != os.Geteuid() {
		return Key{}, perr(fmt.Errorf("%w (owner uid %d, running as %d)", ErrKeyFileOwner, uid, os.Geteuid()))
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return Key{}, perr(fmt.Errorf("%w (mode %04o, want 0600 or stricter)", ErrKeyFileMode, m))
	}
	// One fixed buffer, cleared after: a growing one would leave copies.
	var buf [maxKeyFile + 1]byte
	defer clear(buf[:])
	n, err := io.ReadFull(f, buf[:])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return Key{}, perr(err)
	}
	b := buf[:n]
	if len(b) > maxKeyFile {
		return Key{}, perr(fmt.Errorf("%w (file larger than %d bytes)", ErrKeyFormat, maxKeyFile))
	}
	k, err := parseHex(bytes.TrimSpace(b))
	if err != nil {
		return Key{}, perr(err)
	}
	return k, nil
}

// KeyFromCommand runs argv with r and reads the key from its standard
// output (64 hexadecimal characters, surrounding whitespace allowed),
// as from a secrets manager. The command is stopped after timeout (none
// if timeout <= 0). Each line of its standard error goes to logf (if not
// nil). Its standard output is never logged nor put in an error.
func KeyFromCommand(ctx context.Context, r run.Runner, argv []string, timeout time.Duration, logf func(string, ...any)) (Key, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	c := run.Cmd{Argv: argv}
	res, err := r.Run(ctx, c)
	defer clear(res.Stdout)
	if logf != nil {
		for line := range strings.Lines(string(res.Stderr)) {
			if line = strings.TrimRight(line, "\r\n"); line != "" {
				logf("crypt: key command %s: %s", c, line)
			}
		}
	}
	if err != nil {
		// err comes from the Runner: argv, exit status and standard error,
		// never standard output.
		return Key{}, fmt.Errorf("crypt: key command: %w", err)
	}
	k, err := parseHex(bytes.TrimSpace(res.Stdout))
	if err != nil {
		return Key{}, fmt.Errorf("crypt: key command %s: output: %w", c, err)
	}
	return k, nil
}

// Keyring holds the keys a reader may need, found by key id: a rotated
// key stays in the ring so the files written with it still decrypt,
// while new files use the current key. Safe for concurrent use (it is
// read-only once made).
type Keyring struct {
	current Key
	keys    map[[8]byte]Key
}

// NewKeyring returns a ring whose Current key is current and which also
// holds old (duplicates are harmless).
func NewKeyring(current Key, old ...Key) *Keyring {
	r := &Keyring{current: current, keys: make(map[[8]byte]Key, 1+len(old))}
	for _, k := range append([]Key{current}, old...) {
		r.keys[k.ID()] = k
	}
	return r
}

// Current returns the key to encrypt new files with.
func (r *Keyring) Current() Key { return r.current }

// lookup returns the key with id.
func (r *Keyring) lookup(id [8]byte) (*Key, error) {
	if r != nil {
		if k, ok := r.keys[id]; ok {
			return &k, nil
		}
	}
	return nil, fmt.Errorf("%w %x", ErrUnknownKey, id)
}

// NewContentHash returns a keyed BLAKE3 hash (32-byte sums) whose key is
// derived from k with HKDF-SHA256 (info "openbrc content hash v1"). An
// encrypted target may store it to skip unchanged files: equal plaintexts
// give equal sums, which only holders of k can compute or confirm.
func NewContentHash(k Key) hash.Hash {
	hk, err := hkdf.Key(sha256.New, k[:], nil, "openbrc content hash v1", 32)
	if err != nil {
		panic(err) // only for lengths HKDF-SHA256 cannot produce
	}
	defer clear(hk)
	h, err := blake3.NewKeyed(hk)
	if err != nil {
		panic(err) // only for a key that is not 32 bytes
	}
	return h
}
