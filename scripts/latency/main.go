// Command latency measures, from outside replicad, how long after Bacula
// wrote a file's last block the file becomes visible on each replication
// target. It is the probe of scripts/bench-latency.sh; it trusts no clock
// of replicad's.
//
//	latency watch -vol-dir DIR -targets ROOT1,ROOT2 -o EVENTS [-ready FILE]
//	latency report -events EVENTS -vol VOLUME[,VOLUME...] -targets ROOT1,ROOT2
//	        [-strip-prefix P] [-tsv FILE] [-done UNIXTIME] [-big BYTES]
//
// watch runs until SIGTERM or SIGINT. With inotify it records (a) every
// growth of a volume file in DIR (IN_MODIFY and the others, the size read
// with fstat on a descriptor kept open) as (time, size), and (b) under each
// target root, recursively (a watch is added on every new directory, which
// is then scanned for what it already holds), IN_CREATE, IN_MOVED_FROM,
// IN_MOVED_TO and IN_CLOSE_WRITE events, and IN_ATTRIB of directories (their
// metadata is applied last), each with the time it was read from the inotify
// descriptor. It writes them to EVENTS, one line each, and creates the ready
// file once every watch is in place.
//
// report reads the volume with bacularec and takes, for each file of the
// job but directories, where its last record ends (bacularec.File.End): the
// volume holds the whole file once it is End.BlockEnd bytes long. Then
//
//	latency(file, target) = visible(file, target) - written(file)
//
// where written is the first recorded time the volume was at least
// End.BlockEnd bytes long, and visible the first time the file's final name
// appeared under the target (IN_MOVED_TO from a temporary .brc-tmp.* name,
// IN_CREATE, or found by the scan of a newly watched directory). It prints
// p50, p90, p99 (nearest rank) and the maximum per target, the time from
// the job's end (the volume's last growth: the block with the EOS label) to
// each target's last event (last file visible, directory metadata applied)
// and a breakdown that shows where the time goes, and a machine-readable
// RESULT line. With -tsv it writes one line per file.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "watch":
		err = watch(os.Args[2:])
	case "report":
		err = report(os.Args[2:], os.Stdout)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  latency watch -vol-dir DIR -targets ROOT1,ROOT2 -o EVENTS [-ready FILE]
  latency report -events EVENTS -vol VOLUME[,VOLUME...] -targets ROOT1,ROOT2 [-strip-prefix P] [-tsv FILE] [-done UNIXTIME] [-big BYTES]`)
	os.Exit(2)
}
