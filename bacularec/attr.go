package bacularec

import (
	"bytes"
	"fmt"
	"strconv"
)

// b64 maps Bacula's base-64 digits to their values; other bytes map to 0,
// as in Bacula.
var b64 = func() (t [256]int8) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()

// DecodeBase64Int decodes one of Bacula's positional base-64 integers: most
// significant digit first, no padding, "A" for 0, a leading '-' for
// negative values. It is not RFC 4648. Unlike Bacula, which maps invalid
// digits to 0, it reports them.
func DecodeBase64Int(s []byte) (int64, error) {
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	if len(s) == 0 || len(s) > 11 {
		return 0, fmt.Errorf("%w: base-64 integer %q", ErrAttributes, s)
	}
	var v uint64
	for _, c := range s {
		d := b64[c]
		if d < 0 {
			return 0, fmt.Errorf("%w: bad base-64 digit %q in %q", ErrAttributes, c, s)
		}
		v = v<<6 | uint64(d)
	}
	if len(s) == 11 && b64[s[0]] > 15 { // 11 digits hold 66 bits; keep 64
		return 0, fmt.Errorf("%w: base-64 integer %q overflows 64 bits", ErrAttributes, s)
	}
	if neg {
		return -int64(v), nil
	}
	return int64(v), nil
}

// EncodeBase64Int encodes v the way Bacula does; the inverse of
// DecodeBase64Int.
func EncodeBase64Int(v int64) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var buf [12]byte
	i := len(buf)
	u := uint64(v)
	if v < 0 {
		u = uint64(-v)
	}
	for {
		i--
		buf[i] = alphabet[u&63]
		u >>= 6
		if u == 0 {
			break
		}
	}
	if v < 0 {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}

// ParseStat decodes the encoded stat packet of an attributes record: 13
// space-separated base-64 integers, then optionally LinkFI, flags and the
// data stream (and, from Windows clients, st_fattrs, ignored here).
func ParseStat(s []byte) (Stat, error) {
	var st Stat
	var v [16]int64
	n := 0
	for len(s) > 0 && n < len(v) {
		f := s
		if i := bytes.IndexByte(s, ' '); i >= 0 {
			f, s = s[:i], s[i+1:]
		} else {
			s = nil
		}
		x, err := DecodeBase64Int(f)
		if err != nil {
			return st, fmt.Errorf("stat field %d: %w", n+1, err)
		}
		v[n] = x
		n++
	}
	if n < 13 {
		return st, fmt.Errorf("%w: stat has %d fields, want at least 13", ErrAttributes, n)
	}
	st = Stat{
		Dev: uint64(v[0]), Ino: uint64(v[1]), Mode: uint32(v[2]), Nlink: uint64(v[3]),
		UID: uint32(v[4]), GID: uint32(v[5]), Rdev: uint64(v[6]), Size: v[7],
		Blksize: v[8], Blocks: v[9], Atime: v[10], Mtime: v[11], Ctime: v[12],
		LinkFI: int32(v[13]), Flags: uint32(v[14]), DataStream: int32(v[15]),
	}
	return st, nil
}

// ParseAttributes decodes the data of an attributes record (stream 1 or 5):
//
//	"<FileIndex> <Type> <path>\0<stat>\0<link>\0<attrEx>\0<delta>\0"
//
// The path may contain spaces; only the first two tokens are numbers. The
// returned File has no Job.
func ParseAttributes(data []byte) (*File, error) {
	f := &File{}
	rest := data
	tok := func(what string) (int64, error) {
		i := bytes.IndexByte(rest, ' ')
		if i <= 0 {
			return 0, fmt.Errorf("%w: no %s", ErrAttributes, what)
		}
		v, err := strconv.ParseInt(string(rest[:i]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: %s %q", ErrAttributes, what, rest[:i])
		}
		rest = rest[i+1:]
		return v, nil
	}
	fi, err := tok("FileIndex")
	if err != nil {
		return nil, err
	}
	typ, err := tok("file type")
	if err != nil {
		return nil, err
	}
	f.FileIndex = int32(fi)
	f.Type = FileType(typ & 0xFFFF)
	var fields [5][]byte
	n := 0
	for n < len(fields) {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			if n < 2 {
				return nil, fmt.Errorf("%w: record ends inside field %d", ErrAttributes, n+3)
			}
			if len(rest) > 0 { // tolerate a missing final NUL
				fields[n] = rest
				n++
			}
			break
		}
		fields[n] = rest[:i]
		rest = rest[i+1:]
		n++
	}
	f.Path = string(fields[0])
	if f.Path == "" {
		return nil, fmt.Errorf("%w: empty path", ErrAttributes)
	}
	if f.Stat, err = ParseStat(fields[1]); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	f.Link = string(fields[2])
	f.AttrEx = string(fields[3])
	if len(fields[4]) > 0 {
		d, err := strconv.Atoi(string(fields[4]))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: delta sequence %q", ErrAttributes, f.Path, fields[4])
		}
		f.DeltaSeq = d
	}
	return f, nil
}
