package replicatest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/openbrc/brc/replica"
	"github.com/openbrc/brc/replica/replicatest"
)

// TestRetention runs the suite through a Retention around a Mirror: the
// current tree must be the Mirror's, whatever versions are kept beside
// it (mirrorTree leaves VersionsDir out).
func TestRetention(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the Mirror restores ownership, FIFOs and trusted state only as root")
	}
	for _, tc := range []struct {
		name     string
		versions int
		skip     bool
	}{{"versions=1", 1, false}, {"versions=3,skip_unchanged", 3, true}} {
		t.Run(tc.name, func(t *testing.T) {
			replicatest.Run(t, replicatest.Harness{
				New: func(t *testing.T) replica.Target {
					cat, err := replica.OpenCatalog(filepath.Join(t.TempDir(), "catalog.db"))
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { cat.Close() })
					idx := cat.Index("r")
					m := replica.NewMirror(filepath.Join(t.TempDir(), "root"),
						replica.MirrorOptions{Index: idx, SkipUnchanged: tc.skip})
					return replica.NewRetention(m, tc.versions, idx, replica.RetentionOptions{Logf: t.Logf})
				},
				Tree: mirrorTree,
			})
		})
	}
}
