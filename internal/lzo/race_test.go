//go:build race

package lzo

// The race detector slows the byte loops ~50x; the exhaustive tests
// sample instead of enumerating when it is on.
func init() { raceEnabled = true }
