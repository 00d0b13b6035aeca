package run_test

import (
	"context"
	"fmt"

	"github.com/openbrc/brc/internal/run"
)

func Example() {
	rec := &run.Recorder{}
	var r run.Runner = rec // production code gets run.Exec{}
	r.Run(context.Background(), run.Cmd{Argv: []string{"zfs", "snapshot", "tank/dr@brc-pre-42"}})
	fmt.Println(rec.Argvs())
	// Output: [zfs snapshot tank/dr@brc-pre-42]
}
