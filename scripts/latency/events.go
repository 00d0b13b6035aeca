package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The events file has one tab-separated line per event; times are Unix
// nanoseconds (CLOCK_REALTIME, the watcher's clock), paths are Go-quoted
// and relative to the target root:
//
//	V  TIME  VOLUME  SIZE                     the volume file grew to SIZE bytes
//	E  TIME  TARGET  OP  COOKIE  DIR  PATH    an inotify event under target number TARGET
//	S  TIME  TARGET  DIR  PATH                found by the scan of a newly watched directory
//	O  TIME                                   the inotify queue overflowed: events were lost
//	M  TIME  DIRTY_KB  WRITEBACK_KB           /proc/meminfo's Dirty and Writeback (every 100 ms)
//
// OP is create, moved_from, moved_to, close_write or attrib; DIR is 1 when
// the entry is a directory.
type event struct {
	kind   byte // 'V', 'E', 'S', 'O'
	t      int64
	volume string
	size   int64
	target int
	op     string
	cookie uint32
	dir    bool
	path   string
	dirty  int64 // M: kB
	wback  int64 // M: kB
}

func (e *event) line() string {
	switch e.kind {
	case 'V':
		return fmt.Sprintf("V\t%d\t%s\t%d\n", e.t, e.volume, e.size)
	case 'E':
		return fmt.Sprintf("E\t%d\t%d\t%s\t%d\t%s\t%s\n", e.t, e.target, e.op, e.cookie, b01(e.dir), strconv.Quote(e.path))
	case 'S':
		return fmt.Sprintf("S\t%d\t%d\t%s\t%s\n", e.t, e.target, b01(e.dir), strconv.Quote(e.path))
	case 'M':
		return fmt.Sprintf("M\t%d\t%d\t%d\n", e.t, e.dirty, e.wback)
	}
	return fmt.Sprintf("O\t%d\n", e.t)
}

func b01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// readEvents parses an events file.
func readEvents(r io.Reader) ([]event, error) {
	var evs []event
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		c := strings.Split(sc.Text(), "\t")
		bad := func(err error) ([]event, error) {
			return nil, fmt.Errorf("events line %d %q: %v", n, sc.Text(), err)
		}
		if len(c) < 2 || len(c[0]) != 1 {
			return bad(fmt.Errorf("not an event"))
		}
		e := event{kind: c[0][0]}
		var err error
		if e.t, err = strconv.ParseInt(c[1], 10, 64); err != nil {
			return bad(err)
		}
		want := map[byte]int{'V': 4, 'E': 7, 'S': 5, 'O': 2, 'M': 4}[e.kind]
		if want == 0 || len(c) != want {
			return bad(fmt.Errorf("%d fields", len(c)))
		}
		switch e.kind {
		case 'V':
			e.volume = c[2]
			if e.size, err = strconv.ParseInt(c[3], 10, 64); err != nil {
				return bad(err)
			}
		case 'M':
			if e.dirty, err = strconv.ParseInt(c[2], 10, 64); err != nil {
				return bad(err)
			}
			if e.wback, err = strconv.ParseInt(c[3], 10, 64); err != nil {
				return bad(err)
			}
		case 'E', 'S':
			if e.target, err = strconv.Atoi(c[2]); err != nil {
				return bad(err)
			}
			rest := c[3:]
			if e.kind == 'E' {
				e.op = c[3]
				ck, err := strconv.ParseUint(c[4], 10, 32)
				if err != nil {
					return bad(err)
				}
				e.cookie = uint32(ck)
				rest = c[5:]
			}
			e.dir = rest[0] == "1"
			if e.path, err = strconv.Unquote(rest[1]); err != nil {
				return bad(err)
			}
		}
		evs = append(evs, e)
	}
	return evs, sc.Err()
}
