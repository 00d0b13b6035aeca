package replica

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/testvol"
)

// digestTarget records, for each regular file, what the engine said of its
// digest once the content was consumed.
type digestTarget struct {
	*Memory
	checked int
	bad     map[string]error
}

func (d *digestTarget) Put(ctx context.Context, f *bacularec.File, c Content) error {
	err := d.Memory.Put(ctx, f, c)
	if f.DigestChecked {
		d.checked++
	}
	if f.DigestErr != nil {
		d.bad[f.Path] = f.DigestErr
	}
	return err
}

// The engine checks the File Daemon's digests on a goroutine of its own:
// every digest of the plain fixture is checked, and a content byte changed
// in the volume (block checksum recomputed, as if the damage happened
// before Bacula wrote the block) reaches the targets as a DigestError on
// that file, and on no other.
func TestEngineChecksDigests(t *testing.T) {
	vol, err := os.ReadFile(vols("plain-md5")[0])
	if err != nil {
		t.Fatal(err)
	}
	run := func(p string) *digestTarget {
		t.Helper()
		d := &digestTarget{Memory: NewMemory(), bad: map[string]error{}}
		e := &Engine{Dests: []Destination{{Name: "d", Target: d}}}
		if _, err := e.Run(context.Background(), source(p)); err != nil {
			t.Fatal(err)
		}
		return d
	}
	good := run(vols("plain-md5")[0])
	if good.checked != 29 || len(good.bad) != 0 {
		t.Fatalf("clean volume: %d digests checked, mismatches %v", good.checked, good.bad)
	}
	testvol.FlipContentByte(vol, 2)
	p := filepath.Join(t.TempDir(), "patched.vol")
	if err := os.WriteFile(p, vol, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := run(p)
	if len(bad.bad) != 1 || bad.checked != good.checked {
		t.Fatalf("patched volume: %d digests checked (clean: %d), mismatches %v", bad.checked, good.checked, bad.bad)
	}
	for path, err := range bad.bad {
		var de *bacularec.DigestError
		if !errors.As(err, &de) || de.Algo != "MD5" || de.Path != path {
			t.Fatalf("%s: %#v", path, err)
		}
	}
}
