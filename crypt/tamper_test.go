package crypt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

// readAllChecked decrypts ct with NewReader and checks that what came out
// before an error is authentic: a prefix of want ending at a chunk
// boundary.
func readAllChecked(t *testing.T, ring *Keyring, path string, ct, want []byte) error {
	t.Helper()
	r, err := NewReader(bytes.NewReader(ct), ring, path)
	if err != nil {
		return err
	}
	got, err := io.ReadAll(r)
	if err == nil {
		return nil
	}
	if !bytes.HasPrefix(want, got) || len(got)%ChunkSize != 0 {
		t.Errorf("before %v: %d bytes released, not whole authentic chunks", err, len(got))
	}
	return err
}

// readAt decrypts ct with NewReaderAt.
func readAt(ring *Keyring, path string, ct []byte) ([]byte, error) {
	ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), ring, path)
	if err != nil {
		return nil, err
	}
	got := make([]byte, ra.Size())
	n, err := ra.ReadAt(got, 0)
	if err == io.EOF && n == len(got) {
		err = nil
	}
	return got[:n], err
}

func flip(ct []byte, i int) []byte {
	c := bytes.Clone(ct)
	c[i] ^= 0x10
	return c
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestTamper(t *testing.T) {
	key, other := newTestKey(t), newTestKey(t)
	ring := NewKeyring(key)
	const path = "/var/lib/db/table"
	plain := pattern(3*ChunkSize + 1234) // 4 chunks
	ct := encrypt(t, key, path, plain, 0)
	ct2 := encrypt(t, key, path, plain, 0) // same key, path, content; other salt
	hdr := ct[:headerSize]
	chunk := func(ct []byte, i int) []byte {
		lo := headerSize + i*encChunk
		return ct[lo:min(lo+encChunk, len(ct))]
	}
	full := pattern(2 * ChunkSize) // final chunk full
	ctFull := encrypt(t, key, path, full, 0)

	type tc struct {
		name  string
		ct    []byte
		want  []byte // plaintext, to check released prefixes
		ring  *Keyring
		path  string
		err   error
		notIs error // must not match (a more specific error than want)
	}
	var cases []tc
	add := func(name string, c []byte, err error) {
		cases = append(cases, tc{name: name, ct: c, err: err})
	}
	add("magic", flip(ct, 0), ErrNotEncrypted)
	add("magic/last", flip(ct, 5), ErrNotEncrypted)
	add("version", flip(ct, 6), ErrVersion)
	for i := 7; i < 15; i++ {
		add(fmt.Sprintf("keyid%d", i-7), flip(ct, i), ErrUnknownKey)
	}
	for _, i := range []int{15, 30, 46} {
		add(fmt.Sprintf("salt%d", i-15), flip(ct, i), ErrAuth)
	}
	for c := 0; c < 4; c++ {
		lo := headerSize + c*encChunk
		hi := min(lo+encChunk, len(ct))
		add(fmt.Sprintf("chunk%d/first", c), flip(ct, lo), ErrAuth)
		add(fmt.Sprintf("chunk%d/middle", c), flip(ct, (lo+hi)/2), ErrAuth)
		add(fmt.Sprintf("chunk%d/tag", c), flip(ct, hi-1), ErrAuth)
		add(fmt.Sprintf("truncate/boundary%d", c), ct[:lo], ErrTruncated)
		add(fmt.Sprintf("truncate/chunk%d+100", c), ct[:lo+100], ErrAuth)
		add(fmt.Sprintf("truncate/chunk%d+15", c), ct[:lo+15], ErrTruncated)
	}
	for _, n := range []int{0, 1, 6, 7, 46} {
		add(fmt.Sprintf("truncate/header%d", n), ct[:n], ErrTruncated)
	}
	add("truncate/last-byte", ct[:len(ct)-1], ErrAuth)
	add("drop/chunk0", cat(hdr, chunk(ct, 1), chunk(ct, 2), chunk(ct, 3)), ErrAuth)
	add("drop/chunk1", cat(hdr, chunk(ct, 0), chunk(ct, 2), chunk(ct, 3)), ErrAuth)
	add("drop/last", cat(hdr, chunk(ct, 0), chunk(ct, 1), chunk(ct, 2)), ErrTruncated)
	add("swap/0-1", cat(hdr, chunk(ct, 1), chunk(ct, 0), chunk(ct, 2), chunk(ct, 3)), ErrAuth)
	add("swap/1-2", cat(hdr, chunk(ct, 0), chunk(ct, 2), chunk(ct, 1), chunk(ct, 3)), ErrAuth)
	add("duplicate/chunk1", cat(hdr, chunk(ct, 0), chunk(ct, 1), chunk(ct, 1), chunk(ct, 2), chunk(ct, 3)), ErrAuth)
	add("trailing/1", cat(ct, []byte{0}), ErrAuth)
	add("trailing/full-final+1", cat(ctFull, []byte{0}), ErrTrailingData)
	add("trailing/full-final+chunk", cat(ctFull, chunk(ctFull, 1)), ErrTrailingData)
	add("splice/chunk1-from-other", cat(hdr, chunk(ct, 0), chunk(ct2, 1), chunk(ct, 2), chunk(ct, 3)), ErrAuth)
	add("splice/header-from-other", cat(ct2[:headerSize], ct[headerSize:]), ErrAuth)
	add("splice/last-from-other", cat(hdr, chunk(ct, 0), chunk(ct, 1), chunk(ct, 2), chunk(ct2, 3)), ErrAuth)
	add("extra-empty-final", cat(ctFull[:headerSize+encChunk], make([]byte, tagSize)), ErrAuth)

	// A forged key id naming a key the reader has gets nowhere either.
	forged := bytes.Clone(ct)
	id := other.ID()
	copy(forged[7:], id[:])
	cases = append(cases,
		tc{name: "path/other", ct: ct, path: "/var/lib/db/table2", err: ErrAuth},
		tc{name: "path/empty", ct: ct, path: "", err: ErrAuth},
		tc{name: "key/wrong", ct: ct, ring: NewKeyring(other), err: ErrUnknownKey},
		tc{name: "key/nil-ring", ct: ct, ring: nil, err: ErrUnknownKey},
		tc{name: "key/forged-id", ct: forged, ring: NewKeyring(other), err: ErrAuth},
	)

	for _, c := range cases {
		if c.ring == nil && c.name != "key/nil-ring" {
			c.ring = ring
		}
		if c.path == "" && c.name != "path/empty" {
			c.path = path
		}
		if c.want == nil {
			c.want = plain
		}
		if c.err == ErrAuth {
			c.notIs = ErrTruncated
		}
		t.Run(c.name, func(t *testing.T) {
			err := readAllChecked(t, c.ring, c.path, c.ct, c.want)
			if !errors.Is(err, c.err) || (c.notIs != nil && errors.Is(err, c.notIs)) {
				t.Errorf("Reader: %v, want %v", err, c.err)
			}
			_, err = readAt(c.ring, c.path, c.ct)
			want := c.err
			if _, serr := PlaintextSize(int64(len(c.ct))); want == ErrTrailingData || (serr != nil && !errors.Is(serr, ErrTruncated)) {
				// The size says only that the end is wrong, not how.
				want = ErrAuth
			}
			if !errors.Is(err, want) {
				t.Errorf("ReaderAt: %v, want %v", err, want)
			}
		})
	}
}

// The same tampering on a 1-chunk and an empty file, where the first chunk
// is also the final one.
func TestTamperSmall(t *testing.T) {
	key := newTestKey(t)
	ring := NewKeyring(key)
	for _, size := range []int{0, 1, 100} {
		ct := encrypt(t, key, "/f", pattern(size), 0)
		for i := headerSize; i < len(ct); i++ {
			if _, err := decrypt(ring, "/f", flip(ct, i)); !errors.Is(err, ErrAuth) {
				t.Fatalf("size %d, flip %d: %v", size, i, err)
			}
		}
		for n := 0; n < len(ct); n++ {
			if _, err := decrypt(ring, "/f", ct[:n]); !errors.Is(err, ErrAuth) {
				t.Fatalf("size %d, cut at %d: %v", size, n, err)
			}
		}
		if _, err := decrypt(ring, "/f", cat(ct, ct[headerSize:])); !errors.Is(err, ErrAuth) {
			t.Fatalf("size %d, chunk appended: %v", size, err)
		}
	}
}

func TestRotation(t *testing.T) {
	old, cur := newTestKey(t), newTestKey(t)
	ring := NewKeyring(cur, old, old)
	if ring.Current() != cur {
		t.Fatal("Current")
	}
	for _, k := range []Key{old, cur} {
		ct := encrypt(t, k, "/p", []byte("rotated"), 0)
		if got, err := decrypt(ring, "/p", ct); err != nil || string(got) != "rotated" {
			t.Fatalf("%v: %q, %v", k, got, err)
		}
	}
	if _, err := decrypt(NewKeyring(cur), "/p", encrypt(t, old, "/p", nil, 0)); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("dropped key: %v", err)
	}
}

// A read error from the source is returned as is, not as tampering.
func TestReaderSourceError(t *testing.T) {
	key := newTestKey(t)
	ct := encrypt(t, key, "/f", pattern(2*ChunkSize), 0)
	boom := errors.New("disk on fire")
	r, err := NewReader(io.MultiReader(bytes.NewReader(ct[:headerSize+100]), errReader{boom}), NewKeyring(key), "/f")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.ReadAll(r); err != boom || len(n) != 0 {
		t.Fatalf("%d bytes, %v", len(n), err)
	}
	if _, err := NewReader(errReader{boom}, NewKeyring(key), "/f"); err != boom {
		t.Fatalf("header: %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
