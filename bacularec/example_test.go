package bacularec_test

import (
	"fmt"
	"io"
	"log"

	"github.com/openbrc/brc/bacularec"
)

// List the jobs of a volume and the size of each regular file's content.
func Example() {
	files := bacularec.NewFiles(bacularec.NewMultiReader(
		bacularec.FileVolumes("testdata/bacula-9.6.7-aclxattr-md5.vol")))
	written := map[*bacularec.File]int64{}
	for {
		it, err := files.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		switch it.Kind {
		case bacularec.KindJobStart:
			fmt.Printf("job %d %s level %c\n", it.Job.JobID, it.Job.Name, it.Job.Level)
		case bacularec.KindData:
			written[it.File] += int64(len(it.Data))
		case bacularec.KindFileEnd:
			if it.File.Type == bacularec.TypeReg {
				fmt.Printf("%s %d bytes, %d ACLs, %d xattrs, digest ok: %v\n", it.File.Path,
					written[it.File], len(it.File.ACLs), len(it.File.Xattrs), it.File.DigestErr == nil)
			}
		case bacularec.KindJobEnd:
			fmt.Printf("job %d ended with status %c, %d files\n", it.Job.JobID, it.Job.Status, it.Job.JobFiles)
		}
	}
	// Output:
	// job 7 AclXattr level F
	// /tmp/brc-fixture-src/aclxattr/acl-and-xattr.txt 5 bytes, 1 ACLs, 1 xattrs, digest ok: true
	// /tmp/brc-fixture-src/aclxattr/acl/dir-default-acl/inherited.txt 25 bytes, 1 ACLs, 0 xattrs, digest ok: true
	// /tmp/brc-fixture-src/aclxattr/acl/file-acl.txt 9 bytes, 1 ACLs, 0 xattrs, digest ok: true
	// /tmp/brc-fixture-src/aclxattr/xattr/big-value.txt 16 bytes, 0 ACLs, 1 xattrs, digest ok: true
	// /tmp/brc-fixture-src/aclxattr/xattr/with-xattrs.txt 11 bytes, 0 ACLs, 4 xattrs, digest ok: true
	// /tmp/brc-fixture-src/aclxattr/plain.txt 17 bytes, 0 ACLs, 0 xattrs, digest ok: true
	// job 7 ended with status T, 12 files
}
