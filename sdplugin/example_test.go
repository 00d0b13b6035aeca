package sdplugin_test

import (
	"fmt"

	"github.com/openbrc/brc/sdplugin"
)

// The plugin answers the interface version the storage daemon offers,
// with the license token that version accepts, and refuses the others.
func ExampleNegotiate() {
	for _, v := range []uint32{12, 13, 14} {
		a, err := sdplugin.Negotiate(v, 64)
		if err != nil {
			fmt.Println(v, err)
			continue
		}
		fmt.Printf("%d: answer version %d, license %q\n", v, a.Version, a.License)
	}
	// Output:
	// 12: answer version 12, license "Bacula"
	// 13: answer version 13, license "AGPLv3"
	// 14 sdplugin: unsupported SD plugin interface version: 14 (want 12 or 13)
}
