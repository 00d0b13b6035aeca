package fastlz

import (
	"errors"
)

// refStats describes what a FastLZ block used.
type refStats struct {
	level int
	far   int // level-2 far matches
	chain int // level-2 length chains with at least one 255 byte
}

var errRef = errors.New("reference: invalid block")

// refFastLZ is a deliberately naive FastLZ decoder (byte at a time,
// append-based) written separately from decodeFastLZ, used to cross-check
// it in tests and fuzzing.
func refFastLZ(src []byte, original int) ([]byte, refStats, error) {
	var st refStats
	if len(src) == 0 {
		if original == 0 {
			return []byte{}, st, nil
		}
		return nil, st, errRef
	}
	st.level = int(src[0]>>5) + 1
	if st.level > 2 {
		return nil, st, errRef
	}
	var out []byte
	next := func(i *int) (int, bool) {
		if *i >= len(src) {
			return 0, false
		}
		v := int(src[*i])
		*i++
		return v, true
	}
	i := 0
	first := true
	for i < len(src) {
		c, _ := next(&i)
		if first {
			c &= 0x1f
			first = false
		}
		if c < 32 {
			for k := 0; k <= c; k++ {
				v, ok := next(&i)
				if !ok {
					return nil, st, errRef
				}
				out = append(out, byte(v))
			}
		} else {
			length := c>>5 + 2
			if c>>5 == 7 {
				saw255 := false
				for {
					e, ok := next(&i)
					if !ok {
						return nil, st, errRef
					}
					length += e
					if length > original {
						return nil, st, errRef
					}
					if st.level == 1 || e != 255 {
						break
					}
					saw255 = true
				}
				if saw255 {
					st.chain++
				}
			}
			lo, ok := next(&i)
			if !ok {
				return nil, st, errRef
			}
			dist := (c&31)*256 + lo + 1
			if st.level == 2 && c&31 == 31 && lo == 255 {
				a, ok1 := next(&i)
				b, ok2 := next(&i)
				if !ok1 || !ok2 {
					return nil, st, errRef
				}
				dist = 8192 + a*256 + b
				st.far++
			}
			if dist > len(out) {
				return nil, st, errRef
			}
			for k := 0; k < length; k++ {
				out = append(out, out[len(out)-dist])
			}
		}
		if len(out) > original {
			return nil, st, errRef
		}
	}
	if len(out) != original {
		return nil, st, errRef
	}
	return out, st, nil
}
