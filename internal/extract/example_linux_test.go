//go:build linux

package extract_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/extract"
)

func Example() {
	root, err := os.MkdirTemp("", "extract-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(root)

	w, err := extract.New(root, extract.Options{})
	if err != nil {
		panic(err)
	}
	motd := &bacularec.File{Type: bacularec.TypeReg, Path: "/etc/motd",
		Stat: bacularec.Stat{Mode: 0o100644, Size: 6, Mtime: 1700000000, Atime: 1700000000}}
	etc := &bacularec.File{Type: bacularec.TypeDirEnd, Path: "/etc/",
		Stat: bacularec.Stat{Mode: 0o40755, Mtime: 1600000000, Atime: 1600000000}}
	evil := &bacularec.File{Type: bacularec.TypeReg, Path: "/../../etc/passwd"}
	items := []bacularec.Item{
		{Kind: bacularec.KindFile, File: motd},
		{Kind: bacularec.KindData, File: motd, Offset: 0, Data: []byte("hello\n")},
		{Kind: bacularec.KindFileEnd, File: motd},
		{Kind: bacularec.KindFile, File: evil},
		{Kind: bacularec.KindFileEnd, File: evil},
		{Kind: bacularec.KindFile, File: etc}, // directories come after their contents
		{Kind: bacularec.KindFileEnd, File: etc},
	}
	for i := range items {
		if err := w.Apply(&items[i]); err != nil {
			if extract.IsFatal(err) {
				panic(err)
			}
			fmt.Println(err) // one file lost; go on
		}
	}
	if err := w.Close(); err != nil {
		fmt.Println(err)
	}

	fi, _ := os.Stat(filepath.Join(root, "etc/motd"))
	b, _ := os.ReadFile(filepath.Join(root, "etc/motd"))
	fmt.Printf("motd %v %d %q\n", fi.Mode(), fi.ModTime().Unix(), b)
	di, _ := os.Stat(filepath.Join(root, "etc"))
	fmt.Printf("etc %v %d\n", di.Mode(), di.ModTime().Unix())
	s := w.Stats()
	fmt.Printf("files %d dirs %d bytes %d errors %d\n", s.Files, s.Dirs, s.Bytes, s.Errors)
	// Output:
	// extract: create /../../etc/passwd: unsafe path: ".." component
	// motd -rw-r--r-- 1700000000 "hello\n"
	// etc drwxr-xr-x 1600000000
	// files 1 dirs 1 bytes 6 errors 1
}
