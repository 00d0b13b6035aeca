package lzo

// refDecode is a deliberately plain, byte-at-a-time LZO1X decoder written
// straight from the format table in doc.go. It has no fast paths and no
// overcopy, so the tests compare the optimised decoder against it (outputs
// and errors must be identical), and it counts which instruction forms a
// stream uses so the tests can check that the vectors cover all of them.
//
// Its checks run in the same order as decode's (chosen to match liblzo2's
// observed error codes): an opcode needs at least 3 bytes of input left
// (ErrInputOverrun), then the instruction is parsed (ErrInputOverrun), then
// ErrLookBehind, then ErrOutputOverrun for the match; literal copies check
// the output space before the input.
func refDecode(src []byte, limit int, f *forms) ([]byte, error) {
	if f == nil {
		f = new(forms)
	}
	out := []byte{}
	ip := 0
	next := func() (int, bool) {
		if ip >= len(src) {
			return 0, false
		}
		ip++
		return int(src[ip-1]), true
	}
	ext := func() (int, bool, error) {
		n, zero := 0, false
		for {
			b, ok := next()
			if !ok {
				return 0, false, ErrInputOverrun
			}
			if b != 0 {
				return n + b, zero, nil
			}
			zero = true
			n += 255
		}
	}
	literals := func(n int) error {
		if n > limit-len(out) {
			return ErrOutputOverrun
		}
		if n > len(src)-ip {
			return ErrInputOverrun
		}
		for range n {
			b, _ := next()
			out = append(out, byte(b))
		}
		return nil
	}

	state := 0
	if len(src) > 0 && src[0] > 17 {
		ip = 1
		n := int(src[0]) - 17
		f.firstLit++
		if n < 4 {
			f.firstLitShort++
		}
		if err := literals(n); err != nil {
			return nil, err
		}
		state = min(n, 4)
	}
	for {
		if len(src)-ip < 3 {
			return nil, ErrInputOverrun
		}
		t, _ := next()
		var length, dist, s int
		switch {
		case t >= 64:
			h, ok := next()
			if !ok {
				return nil, ErrInputOverrun
			}
			if t >= 128 {
				length = 5 + (t>>5)&3
			} else {
				length = 3 + (t>>5)&1
			}
			dist = h*8 + (t>>2)&7 + 1
			s = t & 3
			f.m2++
		case t >= 32:
			length = t & 31
			if length == 0 {
				e, zero, err := ext()
				if err != nil {
					return nil, err
				}
				length = 31 + e
				f.m3Ext++
				if zero {
					f.m3ExtZero++
				}
			}
			length += 2
			lo, ok1 := next()
			hi, ok2 := next()
			if !ok1 || !ok2 {
				return nil, ErrInputOverrun
			}
			v := lo + hi*256
			dist = v/4 + 1
			s = v % 4
			f.m3++
		case t >= 16:
			length = t & 7
			if length == 0 {
				e, zero, err := ext()
				if err != nil {
					return nil, err
				}
				length = 7 + e
				f.m4Ext++
				if zero {
					f.m4ExtZero++
				}
			}
			length += 2
			lo, ok1 := next()
			hi, ok2 := next()
			if !ok1 || !ok2 {
				return nil, ErrInputOverrun
			}
			v := lo + hi*256
			h := (t >> 3) & 1
			dist = 16384 + h*16384 + v/4
			if dist == 16384 {
				if ip < len(src) {
					return nil, ErrInputNotConsumed
				}
				return out, nil
			}
			s = v % 4
			if h == 1 {
				f.m4H1++
			} else {
				f.m4H0++
			}
		case state == 0:
			length = t
			if length == 0 {
				e, zero, err := ext()
				if err != nil {
					return nil, err
				}
				length = 15 + e
				f.litExt++
				if zero {
					f.litExtZero++
				}
			}
			f.lit++
			if err := literals(length + 3); err != nil {
				return nil, err
			}
			state = 4
			continue
		default:
			h, ok := next()
			if !ok {
				return nil, ErrInputOverrun
			}
			if state == 4 {
				length = 3
				dist = h*4 + t/4 + 2049
				f.m1Far++
			} else {
				length = 2
				dist = h*4 + t/4 + 1
				f.m1Near++
			}
			s = t & 3
		}
		if dist > len(out) {
			return nil, ErrLookBehind
		}
		if length > limit-len(out) {
			return nil, ErrOutputOverrun
		}
		if dist < length {
			f.overlap++
		}
		if dist > 16384 {
			f.farDist++
		}
		for range length {
			out = append(out, out[len(out)-dist])
		}
		if s != 0 {
			f.trail[s]++
		}
		if err := literals(s); err != nil {
			return nil, err
		}
		state = s
	}
}

// forms counts the instruction forms seen by refDecode.
type forms struct {
	firstLit, firstLitShort      int
	lit, litExt, litExtZero      int
	m1Near, m1Far, m2            int
	m3, m3Ext, m3ExtZero         int
	m4H0, m4H1, m4Ext, m4ExtZero int
	overlap, farDist             int
	trail                        [4]int
}

func (f *forms) add(g forms) {
	f.firstLit += g.firstLit
	f.firstLitShort += g.firstLitShort
	f.lit += g.lit
	f.litExt += g.litExt
	f.litExtZero += g.litExtZero
	f.m1Near += g.m1Near
	f.m1Far += g.m1Far
	f.m2 += g.m2
	f.m3 += g.m3
	f.m3Ext += g.m3Ext
	f.m3ExtZero += g.m3ExtZero
	f.m4H0 += g.m4H0
	f.m4H1 += g.m4H1
	f.m4Ext += g.m4Ext
	f.m4ExtZero += g.m4ExtZero
	f.overlap += g.overlap
	f.farDist += g.farDist
	for i := range f.trail {
		f.trail[i] += g.trail[i]
	}
}

// named lists the counters by name, for coverage checks and logs.
func (f *forms) named() []struct {
	name string
	n    int
} {
	return []struct {
		name string
		n    int
	}{
		{"first-byte literal run", f.firstLit},
		{"first-byte literal run < 4", f.firstLitShort},
		{"literal run", f.lit},
		{"literal run with length extension", f.litExt},
		{"literal run with zero extension byte", f.litExtZero},
		{"M1 2-byte match (after 1..3 literals)", f.m1Near},
		{"M1 3-byte match (after >= 4 literals)", f.m1Far},
		{"M2 match", f.m2},
		{"M3 match", f.m3},
		{"M3 with length extension", f.m3Ext},
		{"M3 with zero extension byte", f.m3ExtZero},
		{"M4 match, H=0", f.m4H0},
		{"M4 match, H=1", f.m4H1},
		{"M4 with length extension", f.m4Ext},
		{"M4 with zero extension byte", f.m4ExtZero},
		{"overlapping match (distance < length)", f.overlap},
		{"match distance > 16 KiB", f.farDist},
		{"1 trailing literal", f.trail[1]},
		{"2 trailing literals", f.trail[2]},
		{"3 trailing literals", f.trail[3]},
	}
}
