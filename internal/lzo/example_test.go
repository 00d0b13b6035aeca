package lzo_test

import (
	"fmt"
	"log"
	"os"

	"github.com/openbrc/brc/internal/lzo"
)

// Decode one LZO1X block, as Bacula stores in each LZO-compressed record,
// reusing one buffer whose capacity is the size limit.
func ExampleDecompress() {
	block, err := os.ReadFile("testdata/text64k-x1.lzo")
	if err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 0, 64<<10)
	out, err := lzo.Decompress(buf, block)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d bytes compressed, %d decompressed\n", len(block), len(out))
	_, err = lzo.Decompress(make([]byte, 0, 1000), block)
	fmt.Println(err)
	// Output:
	// 22601 bytes compressed, 65536 decompressed
	// lzo: output overrun: decompressed data exceeds the size limit
}
