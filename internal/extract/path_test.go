package extract

import (
	"errors"
	"testing"
)

func TestCleanRel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/etc/hosts", "etc/hosts"},
		{"/etc/", "etc"},
		{"/", ""},
		{"", ""},
		{"relative/x", "relative/x"},
		{"//a//b/./c/", "a/b/c"},
		{"/a/./", "a"},
		{"/./.", ""},
		{"/a b/\n/\xff", "a b/\n/\xff"},
		{"/.../..a/a..", ".../..a/a.."},
		{"C:/Users/x", "C:/Users/x"},
	}
	for _, tc := range tests {
		got, err := cleanRel(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("cleanRel(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"/..", "/../x", "/a/../b", "a/..", "..", "/a/b\x00", "/a/./../x"} {
		if _, err := cleanRel(in); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("cleanRel(%q): %v, want ErrUnsafePath", in, err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { cleanRel("/usr/share/doc/file.txt") }); n != 0 {
		t.Errorf("clean path: %v allocs", n)
	}
}

func TestStripPrefix(t *testing.T) {
	tests := []struct{ p, prefix, want string }{
		{"/home/bob/x", "/home/bob", "/x"},
		{"/home/bob/x", "/home/bob/", "x"},
		{"/home/bob", "/home/bob", ""},
		{"/home/bobby/x", "/home/bob", "/home/bobby/x"},
		{"/etc/x", "/home", "/etc/x"},
		{"/etc/x", "", "/etc/x"},
	}
	for _, tc := range tests {
		if got := StripPrefix(tc.p, tc.prefix); got != tc.want {
			t.Errorf("StripPrefix(%q, %q) = %q, want %q", tc.p, tc.prefix, got, tc.want)
		}
	}
}
