package listing_test

import (
	"bytes"
	"fmt"
	"log"
	"strings"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/listing"
)

// List a volume as JSON lines, one object per volume label, job, file and
// job end.
func ExampleWrite() {
	files := bacularec.NewFiles(bacularec.NewMultiReader(
		bacularec.FileVolumes("../../bacularec/testdata/bacula-9.6.7-accurate-2-incr.vol")))
	var out bytes.Buffer
	sum, err := listing.Write(&out, files, true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d volume, %d job, %d files\n", sum.Volumes, sum.Jobs, sum.Files)
	fmt.Println(strings.Count(out.String(), `"type":"FT_DELETED"`), "deletion records")
	// Output:
	// 1 volume, 1 job, 17 files
	// 6 deletion records
}
