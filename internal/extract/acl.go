package extract

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Linux POSIX ACL extended-attribute format (include/uapi/linux/posix_acl_xattr.h):
// a little-endian u32 version 2, then one {u16 tag, u16 perm, u32 id} per
// entry, sorted by tag then id.
const (
	aclXattrVersion = 2

	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20

	aclUndefinedID = 0xFFFFFFFF

	xattrACLAccess  = "system.posix_acl_access"
	xattrACLDefault = "system.posix_acl_default"
)

type aclEntry struct {
	tag  uint16
	perm uint16
	id   uint32
}

// idLookup resolves a user or group name found in ACL text.
type idLookup func(name string) (uint32, error)

// parseACL parses the text form of a Linux ACL as written by acl_to_text(3)
// or getfacl(1): entries separated by newlines or commas, "#" comments
// (including "#effective:" remarks), long or abbreviated tags
// (user/u, group/g, mask/m, other/o), an optional "default:"/"d:" prefix
// (ignored: the caller knows which ACL it is), numeric ids or names
// (numbers first, like libacl). A missing mask is computed as setfacl does.
// It returns no entries (and no error) for text without entries.
func parseACL(text string, user, group idLookup) ([]aclEntry, error) {
	var ents []aclEntry
	for len(text) > 0 {
		var e string
		if i := strings.IndexAny(text, "\n,"); i >= 0 {
			e, text = text[:i], text[i+1:]
		} else {
			e, text = text, ""
		}
		if i := strings.IndexByte(e, '#'); i >= 0 {
			e = e[:i]
		}
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		orig := e
		if s, ok := strings.CutPrefix(e, "default:"); ok {
			e = s
		} else if s, ok := strings.CutPrefix(e, "d:"); ok {
			e = s
		}
		f := strings.Split(e, ":")
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		bad := func(why string) error {
			return fmt.Errorf("%w: entry %q: %s", ErrACL, orig, why)
		}
		var ent aclEntry
		var qual, perm string
		switch f[0] {
		case "user", "u", "group", "g":
			if len(f) != 3 {
				return nil, bad("want tag:qualifier:perms")
			}
			qual, perm = f[1], f[2]
			isUser := f[0][0] == 'u'
			switch {
			case qual == "" && isUser:
				ent.tag, ent.id = aclUserObj, aclUndefinedID
			case qual == "":
				ent.tag, ent.id = aclGroupObj, aclUndefinedID
			default:
				look := group
				ent.tag = aclGroup
				if isUser {
					look, ent.tag = user, aclUser
				}
				id, err := resolveID(qual, look)
				if err != nil {
					return nil, bad(err.Error())
				}
				ent.id = id
			}
		case "mask", "m", "other", "o":
			switch len(f) {
			case 2:
				perm = f[1]
			case 3:
				if f[1] != "" {
					return nil, bad("unexpected qualifier")
				}
				perm = f[2]
			default:
				return nil, bad("want tag::perms")
			}
			ent.tag, ent.id = aclOther, aclUndefinedID
			if f[0][0] == 'm' {
				ent.tag = aclMask
			}
		default:
			return nil, bad("unknown tag")
		}
		p, ok := parsePerm(perm)
		if !ok {
			return nil, bad("bad permissions")
		}
		ent.perm = p
		ents = append(ents, ent)
	}
	if len(ents) == 0 {
		return nil, nil
	}
	slices.SortFunc(ents, func(a, b aclEntry) int {
		if a.tag != b.tag {
			return int(a.tag) - int(b.tag)
		}
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	var n [0x21]int
	var mask uint16
	for i, e := range ents {
		n[e.tag]++
		if i > 0 && ents[i-1].tag == e.tag && ents[i-1].id == e.id {
			return nil, fmt.Errorf("%w: duplicate entry (tag %#x id %d)", ErrACL, e.tag, e.id)
		}
		if e.tag == aclUser || e.tag == aclGroupObj || e.tag == aclGroup {
			mask |= e.perm
		}
	}
	if n[aclUserObj] != 1 || n[aclGroupObj] != 1 || n[aclOther] != 1 {
		return nil, fmt.Errorf("%w: needs exactly one user::, group:: and other:: entry", ErrACL)
	}
	if n[aclMask] == 0 && n[aclUser]+n[aclGroup] > 0 {
		// Insert the mask before other:: (the last entry), keeping the order.
		ents = append(ents, ents[len(ents)-1])
		ents[len(ents)-2] = aclEntry{tag: aclMask, perm: mask, id: aclUndefinedID}
	}
	return ents, nil
}

func resolveID(q string, look idLookup) (uint32, error) {
	if id, err := strconv.ParseUint(q, 10, 32); err == nil {
		return uint32(id), nil
	}
	if look == nil {
		return 0, fmt.Errorf("unknown name %q", q)
	}
	return look(q)
}

func parsePerm(s string) (uint16, bool) {
	if s == "" {
		return 0, false
	}
	var p uint16
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 'r':
			p |= 4
		case 'w':
			p |= 2
		case 'x':
			p |= 1
		case '-':
		default:
			return 0, false
		}
	}
	return p, true
}

// aclTrivial reports whether an ACL only repeats the permission bits
// (user::, group::, other:: and nothing else).
func aclTrivial(ents []aclEntry) bool { return len(ents) == 3 }

// appendACLXattr appends the system.posix_acl_* value for ents to b.
func appendACLXattr(b []byte, ents []aclEntry) []byte {
	b = binary.LittleEndian.AppendUint32(b, aclXattrVersion)
	for _, e := range ents {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}
