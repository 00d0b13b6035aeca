package replica_test

import (
	"context"
	"fmt"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/replica"
)

// Replicate a volume to two targets at once, one of them bandwidth
// limited.
func Example() {
	a, b := replica.NewMemory(), replica.NewMemory()
	e := &replica.Engine{Dests: []replica.Destination{
		{Name: "site-a", Target: a},
		{Name: "site-b", Target: replica.Limit(b, 10<<20)},
	}}
	open := func(context.Context) (*bacularec.Files, error) {
		vol := bacularec.FileVolumes("../bacularec/testdata/bacula-9.6.7-plain-md5.vol")
		return bacularec.NewFiles(bacularec.NewMultiReader(vol)), nil
	}
	sum, err := e.Run(context.Background(), open)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range sum.Targets {
		fmt.Printf("%s: %d files, %d bytes, ok=%v\n", t.Name, t.Files, t.Bytes, t.OK())
	}
	fmt.Println(len(a.Paths()) == len(b.Paths()))
	// Output:
	// site-a: 54 files, 350273 bytes, ok=true
	// site-b: 54 files, 350273 bytes, ok=true
	// true
}
