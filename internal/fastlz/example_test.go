package fastlz_test

import (
	"fmt"

	"github.com/openbrc/brc/internal/fastlz"
)

func ExampleDecodeStream() {
	// The body of an FZFZ record (the bytes after its 12-byte compression
	// header): one COMPRESSED block holding a level-1 FastLZ block, then
	// the end marker.
	body := []byte{
		'F', 'a', 's', 't', 'L', 'Z', 0, 0xC8, // magic, COMPRESSED, p=8
		6, 0, 0, 0, // compressed size (LE)
		9, 0, 0, 0, // original size (LE)
		0x02, 'a', 'b', 'c', // literal run of 3
		0x80, 0x02, // match: length 4+2, distance 2+1
		'F', 'a', 's', 't', 'L', 'Z', 0, 0xC8, // end marker
		0, 0, 0, 0, 0, 0, 0, 0,
	}
	out, err := fastlz.DecodeStream(nil, body, fastlz.FastLZ, fastlz.BlockSize)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\n", out)

	// Bytes after the end marker are rejected.
	_, err = fastlz.DecodeStream(nil, append(body, 0), fastlz.FastLZ, fastlz.BlockSize)
	fmt.Println(err)
	// Output:
	// abcabcabc
	// fastlz: trailing data after end marker: 1 bytes after end marker (block 1 at body offset 22)
}
