package report

import "unsafe"

// unsafeString aliases b, as a Source reading bbolt pages might.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
