package snapshot_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/openbrc/brc/internal/run"
	"github.com/openbrc/brc/snapshot"
)

// A job on a ZFS target fails, so its writes are rolled back. The Recorder
// stands in for run.Exec{} and answers findmnt as if /tank/dr/target were
// in dataset tank/dr.
func Example() {
	ctx := context.Background()
	rec := &run.Recorder{Respond: func(c run.Cmd) (run.Result, error) {
		if c.Argv[0] == "findmnt" {
			return run.Result{Stdout: []byte(`{"filesystems": [{"target": "/tank/dr", "source": "tank/dr", "fstype": "zfs", "options": "rw,xattr"}]}`)}, nil
		}
		return run.Result{}, nil
	}}
	b, err := snapshot.New(snapshot.Config{Backend: snapshot.ZFS, Keep: 3}, rec)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := b.Check(ctx, "/tank/dr/target"); err != nil { // at start
		fmt.Println(err)
		return
	}

	g, err := snapshot.Before(ctx, b, "/tank/dr/target", 42, 3)
	if err != nil {
		fmt.Println("no snapshot, job not started:", err)
		return
	}
	jobErr := errors.New("volume read error") // ... the job replicates, and fails
	if err := g.Done(ctx, jobErr == nil); err != nil {
		fmt.Println(err)
	}
	for _, a := range rec.Argvs() {
		fmt.Println(a)
	}
	// Output:
	// findmnt -J -o TARGET,SOURCE,FSTYPE,OPTIONS --target /tank/dr/target
	// findmnt -J -o TARGET,SOURCE,FSTYPE,OPTIONS --target /tank/dr/target
	// zfs snapshot tank/dr@brc-pre-42
	// zfs rollback -r tank/dr@brc-pre-42
	// zfs destroy tank/dr@brc-pre-42
}
