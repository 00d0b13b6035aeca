package lzo

import (
	"flag"
	"os"
	"testing"
)

// TestMain shortens the fuzzer's input minimisation unless the caller set
// -test.fuzzminimizetime. Minimising one of the 64 KiB seed mutants is
// quadratic in its size and would otherwise use the default 60 s per new
// input, so a "-fuzztime=60s" run would do little but minimise.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.fuzzminimizetime" {
			set = true
		}
	})
	if !set && flag.Lookup("test.fuzzminimizetime") != nil {
		if err := flag.Set("test.fuzzminimizetime", "2s"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
