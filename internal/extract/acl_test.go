package extract

import (
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
)

func noNames(name string) (uint32, error) { return 0, fmt.Errorf("no user %q", name) }

func TestParseACL(t *testing.T) {
	users := func(name string) (uint32, error) {
		if name == "bob" {
			return 1001, nil
		}
		return noNames(name)
	}
	tests := []struct {
		text string
		want string // hex of the xattr, "" for no entries, "err" for ErrACL
	}{
		{"user::rw-\ngroup::r--\nother::r--\n", "02000000" + "01000600ffffffff" + "04000400ffffffff" + "20000400ffffffff"},
		// Order of input does not matter; named entries sorted by id.
		{"other::---\nmask::rwx\ngroup:20:r-x\nuser:bob:rw-\nuser:7:r\ngroup::r-x\nuser::rwx",
			"02000000" + "01000700ffffffff" + "0200040007000000" + "02000600e9030000" + "04000500ffffffff" + "0800050014000000" + "10000700ffffffff" + "20000000ffffffff"},
		// Abbreviations, commas, comments, "#effective", default: prefix,
		// mask/other without the empty qualifier.
		{"# file: x\nd:u::rwx, d:g::r-x,default:g:5:rwx #effective:r-x\n m:r-x\n o:---", "02000000" + "01000700ffffffff" + "04000500ffffffff" + "0800070005000000" + "10000500ffffffff" + "20000000ffffffff"},
		// Missing mask: computed from the group class (setfacl does so).
		{"u::rw-,u:9:r--,g::--x,o::---", "02000000" + "01000600ffffffff" + "0200040009000000" + "04000100ffffffff" + "10000500ffffffff" + "20000000ffffffff"},
		{"", ""},
		{"\n# only a comment\n", ""},
		{"user::rw-\ngroup::r--", "err"}, // no other
		{"user::rw-\nuser::rw-\ngroup::r--\nother::r--", "err"},                    // two user::
		{"user::rw-\nuser:5:r\nuser:5:w\ngroup::r--\nother::r--\nmask::rw", "err"}, // duplicate
		{"user::rwz\ngroup::r--\nother::r--", "err"},
		{"user::\ngroup::r--\nother::r--", "err"},
		{"bogus::rw-\ngroup::r--\nother::r--", "err"},
		{"user:nobody-known:rw-\nuser::rw-\ngroup::r--\nother::r--\nmask::rw-", "err"},
		{"user:1:2:rw-\nuser::rw-\ngroup::r--\nother::r--", "err"},
		{"other:x:r--\nuser::rw-\ngroup::r--", "err"},
	}
	for _, tc := range tests {
		ents, err := parseACL(tc.text, users, noNames)
		switch {
		case tc.want == "err":
			if !errors.Is(err, ErrACL) {
				t.Errorf("%q: err %v, want ErrACL", tc.text, err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.text, err)
		case tc.want == "":
			if ents != nil {
				t.Errorf("%q: entries %v", tc.text, ents)
			}
		default:
			if got := hex.EncodeToString(appendACLXattr(nil, ents)); got != tc.want {
				t.Errorf("%q:\n got %s\nwant %s", tc.text, got, tc.want)
			}
		}
	}
}
