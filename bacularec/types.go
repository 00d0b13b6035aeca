package bacularec

import (
	"fmt"
	"io/fs"
	"time"
)

// SessionKey identifies one job's session on a volume. VolSessionId restarts at
// 1 when the storage daemon restarts, so only the pair is unique.
type SessionKey struct {
	ID   uint32 // VolSessionId
	Time uint32 // VolSessionTime: storage daemon start, Unix seconds
}

func (k SessionKey) String() string { return fmt.Sprintf("%d/%d", k.ID, k.Time) }

// FileType is the Bacula file type (FT_*) of an attributes record.
type FileType int

// The file types that appear on volumes. Types only used inside the file
// daemon (FT_NOACCESS, FT_NOCHG, ...) keep their numbers but never reach a
// volume; they are still given names so a listing can show them.
const (
	TypeLinkSaved     FileType = 1  // hard link to a file saved earlier in the job (File.Link, Stat.LinkFI)
	TypeRegEmpty      FileType = 2  // empty regular file, no data records
	TypeReg           FileType = 3  // regular file
	TypeSymlink       FileType = 4  // symbolic link, target in File.Link
	TypeDirEnd        FileType = 5  // directory, emitted after its contents
	TypeSpecial       FileType = 6  // device node, FIFO or socket (no data)
	TypeNoAccess      FileType = 7  // not saved
	TypeNoFollow      FileType = 8  // not saved
	TypeNoStat        FileType = 9  // not saved
	TypeNoChange      FileType = 10 // not saved
	TypeDirNoChange   FileType = 11 // not saved
	TypeIsArch        FileType = 12 // not saved
	TypeNoRecurse     FileType = 13 // saved as TypeDirEnd
	TypeNoFSChange    FileType = 14 // saved as TypeDirEnd
	TypeNoOpen        FileType = 15 // not saved
	TypeRaw           FileType = 16 // raw block device read as data
	TypeFIFO          FileType = 17 // FIFO read as data
	TypeDirBegin      FileType = 18 // internal to the file daemon
	TypeInvalidFS     FileType = 19 // saved as TypeDirEnd
	TypeInvalidDT     FileType = 20 // saved as is
	TypeReparse       FileType = 21 // Windows reparse point (directory)
	TypePlugin        FileType = 22 // plugin-generated file
	TypeDeleted       FileType = 23 // accurate mode: file deleted since the previous job
	TypeBase          FileType = 24 // base-job duplicate
	TypeRestoreFirst  FileType = 25 // restore object
	TypeJunction      FileType = 26 // Windows junction (directory)
	TypePluginConfig  FileType = 27 // restore object
	TypePluginConfigF FileType = 28 // restore object (filled)
)

var fileTypeNames = [...]string{
	1: "FT_LNKSAVED", 2: "FT_REGE", 3: "FT_REG", 4: "FT_LNK", 5: "FT_DIREND",
	6: "FT_SPEC", 7: "FT_NOACCESS", 8: "FT_NOFOLLOW", 9: "FT_NOSTAT",
	10: "FT_NOCHG", 11: "FT_DIRNOCHG", 12: "FT_ISARCH", 13: "FT_NORECURSE",
	14: "FT_NOFSCHG", 15: "FT_NOOPEN", 16: "FT_RAW", 17: "FT_FIFO",
	18: "FT_DIRBEGIN", 19: "FT_INVALIDFS", 20: "FT_INVALIDDT", 21: "FT_REPARSE",
	22: "FT_PLUGIN", 23: "FT_DELETED", 24: "FT_BASE", 25: "FT_RESTORE_FIRST",
	26: "FT_JUNCTION", 27: "FT_PLUGIN_CONFIG", 28: "FT_PLUGIN_CONFIG_FILLED",
}

// String returns Bacula's name for the type, e.g. "FT_REG".
func (t FileType) String() string {
	if t > 0 && int(t) < len(fileTypeNames) {
		return fileTypeNames[t]
	}
	return fmt.Sprintf("FT_%d", int(t))
}

// IsDir reports whether the type describes a directory.
func (t FileType) IsDir() bool {
	return t == TypeDirEnd || t == TypeReparse || t == TypeJunction
}

// Stat is the decoded stat packet of an attributes record. Times are Unix
// seconds; Bacula keeps no sub-second precision.
type Stat struct {
	Dev        uint64
	Ino        uint64
	Mode       uint32 // st_mode: type bits and permission bits
	Nlink      uint64
	UID        uint32
	GID        uint32
	Rdev       uint64
	Size       int64
	Blksize    int64
	Blocks     int64
	Atime      int64
	Mtime      int64
	Ctime      int64
	LinkFI     int32  // FileIndex of the hard-link target, else 0
	Flags      uint32 // BSD chflags
	DataStream int32  // data stream the file was saved with
}

// Unix mode type bits, as stored in Stat.Mode on every platform Bacula
// supports.
const (
	modeTypeMask = 0o170000
	modeSocket   = 0o140000
	modeSymlink  = 0o120000
	modeRegular  = 0o100000
	modeBlock    = 0o060000
	modeDir      = 0o040000
	modeChar     = 0o020000
	modeFIFO     = 0o010000
)

// FileMode converts Stat.Mode to an fs.FileMode, including the setuid,
// setgid and sticky bits.
func (s *Stat) FileMode() fs.FileMode {
	m := fs.FileMode(s.Mode & 0o777)
	if s.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if s.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if s.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch s.Mode & modeTypeMask {
	case modeDir:
		m |= fs.ModeDir
	case modeSymlink:
		m |= fs.ModeSymlink
	case modeFIFO:
		m |= fs.ModeNamedPipe
	case modeSocket:
		m |= fs.ModeSocket
	case modeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case modeBlock:
		m |= fs.ModeDevice
	}
	return m
}

// MTime returns the modification time.
func (s *Stat) MTime() time.Time { return time.Unix(s.Mtime, 0) }

// ACL is one ACL stream of a file. For Linux (streams 1007 and 1008) Text is
// the acl_to_text form without its terminating NUL.
type ACL struct {
	Stream int
	Text   string
}

// Linux ACL streams.
const (
	StreamACLLinuxDefault = 1007
	StreamACLLinuxAccess  = 1008
	StreamXattrLinux      = 1998
)

// Xattr is one extended attribute. Names carry their namespace
// ("user.comment", "trusted.x", "security.selinux").
type Xattr struct {
	Name  string
	Value []byte
}

// Digest is a digest record of a file: the hash of its uncompressed content.
type Digest struct {
	Algo string // "MD5", "SHA1", "SHA256", "SHA512", "XXH3-64", "XXH3-128", "XXH64"
	Sum  []byte
}

// StreamCount counts records of one stream that were not decoded.
type StreamCount struct {
	Stream  int // masked stream type (Stream & 0x7FF)
	Records int
	Bytes   int64
}

// File is one file of a job, as described by its attributes record. The
// fields filled by later records (ACLs, Xattrs, Digest, DigestErr,
// NotDecoded, Written) are complete when the file's KindFileEnd item is
// returned.
type File struct {
	Job       *Job
	FileIndex int32
	Type      FileType
	// Path is the backed-up absolute path as recorded; directories end in
	// "/". Bacula stores raw bytes, so Path need not be valid UTF-8.
	Path     string
	Link     string // symlink target (TypeSymlink) or first path of a hard link (TypeLinkSaved)
	Stat     Stat
	AttrEx   string // Windows attribsEx or macOS fork length; empty on Unix
	DeltaSeq int
	// AttrStream is the stream of the attributes record (1, or 5 with AttrEx).
	AttrStream int

	// DataStream is the stream of the first data record, 0 when none came.
	DataStream int
	// Written is the number of content bytes delivered in KindData items.
	Written int64
	ACLs    []ACL
	Xattrs  []Xattr
	Digest  *Digest
	// DigestErr is non-nil when a digest record did not match the content;
	// it is a *DigestError.
	DigestErr error
	// NotDecoded lists streams of this file passed through as KindRaw
	// items (encrypted, Win32, plugin, ...).
	NotDecoded []StreamCount
	// DigestChecked is set when Digest was compared with the content.
	DigestChecked bool
	// Incomplete is set when the input ended before the file did.
	Incomplete bool
	// End is where the file's last record (attributes, data, digest, ACL,
	// xattr or undecoded stream) ends in the volumes: a volume being
	// written holds all of the file once it is End.BlockEnd bytes long
	// (KindFileEnd itself comes when the job's next record is read). It
	// moves with each record of the file and is final at KindFileEnd.
	End RecordEnd
}

// Job is one backup session on the volumes: its start label (SOS) and, once
// seen, its end label (EOS).
type Job struct {
	Session SessionKey
	// Started is false when the session's SOS label was not in the input
	// (reading began on a continuation volume); the label fields are then
	// zero.
	Started bool
	// Ended is set when the EOS label was read. A job whose input ended
	// first is reported with Ended false and must be treated as failed.
	Ended bool

	JobID      uint32
	Job        string // unique job name, e.g. "Plain.2026-11-27_03.15.58_03"
	Name       string // Job resource name
	Client     string
	FileSet    string
	FileSetMD5 string
	Pool       string
	PoolType   string
	Type       byte // 'B' backup, 'C' copy, 'M' migrated, ...
	Level      byte // 'F' full, 'I' incremental, 'D' differential, ...
	VerNum     uint32
	StartTime  time.Time // SOS write time

	// From the EOS label.
	EndTime    time.Time
	Status     byte // 'T' terminated OK, 'E' error, 'f' fatal, 'A' canceled, ...
	JobFiles   uint32
	JobBytes   uint64
	JobErrors  uint32
	StartBlock uint32
	EndBlock   uint32
	StartFile  uint32
	EndFile    uint32

	// Counters kept by the reader.
	Files int // attributes records seen
}

// OK reports whether the job ended with status 'T' (terminated normally).
func (j *Job) OK() bool { return j.Ended && j.Status == 'T' }
