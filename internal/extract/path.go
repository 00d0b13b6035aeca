package extract

import (
	"errors"
	"fmt"
	"strings"
)

var (
	errDotDot   = fmt.Errorf("%w: \"..\" component", ErrUnsafePath)
	errNUL      = fmt.Errorf("%w: NUL byte", ErrUnsafePath)
	errRootPath = fmt.Errorf("%w: names the root itself", ErrUnsafePath)
	errSymlink  = fmt.Errorf("%w: crosses a symbolic link", ErrUnsafePath)
)

// StripPrefix removes prefix from p when p starts with it at a component
// boundary, like Bacula's strip_prefix; otherwise p is returned unchanged.
func StripPrefix(p, prefix string) string {
	if prefix == "" || !strings.HasPrefix(p, prefix) {
		return p
	}
	rest := p[len(prefix):]
	if rest == "" || rest[0] == '/' || prefix[len(prefix)-1] == '/' {
		return rest
	}
	return p
}

// cleanRel turns a recorded path into a path relative to the root: leading
// and trailing slashes, empty and "." components are dropped; ".." and NUL
// are refused (ErrUnsafePath). "" means the root itself. A path that is
// already clean is returned without allocating.
func cleanRel(p string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", errNUL
	}
	p = strings.Trim(p, "/")
	clean := true
	for rest := p; ; {
		c, tail, more := strings.Cut(rest, "/")
		switch c {
		case "..":
			return "", errDotDot
		case "", ".":
			clean = false
		}
		if !more {
			break
		}
		rest = tail
	}
	if clean {
		return p, nil
	}
	var b strings.Builder
	b.Grow(len(p))
	for c := range strings.SplitSeq(p, "/") {
		if c == "" || c == "." {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(c)
	}
	return b.String(), nil
}

// splitRel splits a clean relative path into its directory ("" for the
// root) and last component.
func splitRel(rel string) (dir, name string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return "", rel
}

// opError tags an error with the operation that failed, for PathError.Op.
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return e.op + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

func opErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var oe *opError
	if errors.As(err, &oe) {
		return err
	}
	return &opError{op, err}
}

// joinErrs joins at most a few errors, summarising the rest.
func joinErrs(errs []error) error {
	const max = 10
	if len(errs) > max {
		more := fmt.Errorf("extract: and %d more errors", len(errs)-max)
		errs = append(errs[:max:max], more)
	}
	return errors.Join(errs...)
}
