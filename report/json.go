package report

import (
	"encoding/json"
	"fmt"
	"io"
)

// WriteJSON writes r as one JSON document of schema SchemaVersion (see the
// package comment), indented by two spaces and ending in a newline. Map
// keys come out sorted, so equal reports give equal bytes. A Report with
// an empty Schema is written as SchemaVersion; another version is
// ErrSchema. A nil r is ErrNilReport; write errors are returned as is.
func WriteJSON(w io.Writer, r *Report) error {
	if r == nil {
		return ErrNilReport
	}
	out := *r
	switch out.Schema {
	case "":
		out.Schema = SchemaVersion
	case SchemaVersion:
	default:
		return fmt.Errorf("%w: %q", ErrSchema, out.Schema)
	}
	enc := json.NewEncoder(w)
	// Paths and error texts are data, not HTML: "<" stays "<".
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(&out)
}
