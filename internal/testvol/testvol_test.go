package testvol

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/openbrc/brc/bacularec"
)

// The changed volume reads without block errors and holds one file whose
// digest no longer matches.
func TestFlipContentByte(t *testing.T) {
	vol, err := os.ReadFile("../../bacularec/testdata/bacula-9.6.7-plain-md5.vol")
	if err != nil {
		t.Fatal(err)
	}
	FlipContentByte(vol, 2)
	files := bacularec.NewFiles(bacularec.NewReader(bytes.NewReader(vol)))
	var bad []string
	for {
		it, err := files.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if it.Kind == bacularec.KindFileEnd && errors.Is(it.File.DigestErr, bacularec.ErrDigestMismatch) {
			bad = append(bad, it.File.Path)
		}
	}
	if len(bad) != 1 {
		t.Fatalf("mismatches %v", bad)
	}
}
