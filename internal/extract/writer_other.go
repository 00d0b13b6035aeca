//go:build !linux

package extract

import "github.com/openbrc/brc/bacularec"

// Writer materialises bacularec Items under a root directory. It is only
// implemented on Linux; elsewhere New returns ErrUnsupported.
type Writer struct{ stats Stats }

// New returns ErrUnsupported on this system.
func New(root string, opt Options) (*Writer, error) { return nil, ErrUnsupported }

// Apply returns ErrUnsupported.
func (w *Writer) Apply(it *bacularec.Item) error { return ErrUnsupported }

// Close returns nil.
func (w *Writer) Close() error { return nil }

// Stats returns zero counters.
func (w *Writer) Stats() Stats { return w.stats }
