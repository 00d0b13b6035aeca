package bacularec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// Stream numbers (the low 11 bits of a record's Stream).
const (
	StreamUnixAttributes   = 1
	StreamFileData         = 2
	StreamMD5Digest        = 3
	StreamGzipData         = 4
	StreamUnixAttributesEx = 5
	StreamSparseData       = 6
	StreamSparseGzipData   = 7
	StreamSHA1Digest       = 10
	StreamSHA256Digest     = 17
	StreamSHA512Digest     = 18
	StreamSignedDigest     = 19
	StreamPluginName       = 26
	StreamRestoreObject    = 28
	StreamCompressedData   = 29
	StreamSparseCompressed = 30
	StreamXXH3Digest       = 40 // Bacula 15: XXH3-64 (8 bytes); Bareos: XXH3-128 (16 bytes)
	StreamXXH3128Digest    = 41 // Bacula 15
)

// Files reads a volume set file by file: the jobs, the files of each job
// with their attributes, and their content as (offset, bytes) pieces,
// decompressed and with digests checked as the content streams by.
//
// Files holds no file content in memory: each piece is handed out as it is
// read, so memory stays flat however large the files are.
type Files struct {
	r        *Reader
	sessions map[SessionKey]*session
	queue    []Item
	qi       int
	dec      decoder
	done     bool
	err      error

	noVerify bool // SetVerify(false): the caller checks digests

	// With SetDecoders: records read ahead and decompressed in parallel.
	decoders int
	ahead    chan *fetched
	stop     chan struct{}
	cur      *fetched // the record being handled
}

// session is the state of one job being read.
type session struct {
	job  *Job
	file *File
	next int64 // where the next non-sparse piece goes
	v    *Verifier
	// algo is the digest algorithm the job's files carried last: "" not yet
	// known, "-" none. Digest records follow the data, so the hash to
	// compute is guessed from the previous file of the job.
	algo string
}

// NewFiles returns a file-level reader over r.
func NewFiles(r *Reader) *Files {
	return &Files{r: r, sessions: make(map[SessionKey]*session)}
}

// Reader returns the underlying record reader.
func (f *Files) Reader() *Reader { return f.r }

// Next returns the next item. At the end of the input it first ends every
// job still open (KindFileEnd with File.Incomplete, KindJobEnd with
// Job.Ended false), then returns io.EOF. Errors are sticky.
func (f *Files) Next() (*Item, error) {
	for {
		if f.qi < len(f.queue) {
			it := &f.queue[f.qi]
			f.qi++
			return it, nil
		}
		f.queue, f.qi = f.queue[:0], 0
		if f.err != nil {
			return nil, f.err
		}
		if f.done {
			return nil, io.EOF
		}
		rec, notices, err := f.nextRecord()
		for _, n := range notices {
			f.push(Item{Kind: KindNotice, Err: n})
		}
		if err == io.EOF {
			f.finish()
			f.done = true
			continue
		}
		if err != nil {
			f.err = err
			continue
		}
		if err := f.handle(rec); err != nil {
			f.err = &FormatError{Volume: rec.Volume, Block: rec.Block.Number, Offset: rec.Offset, Err: err}
		}
	}
}

func (f *Files) push(it Item) { f.queue = append(f.queue, it) }

func (f *Files) notice(rec *Record, err error) {
	f.push(Item{Kind: KindNotice, Err: &FormatError{Volume: rec.Volume, Block: rec.Block.Number, Offset: rec.Offset, Err: err}})
}

// finish ends the jobs whose EOS was not in the input.
func (f *Files) finish() {
	keys := make([]SessionKey, 0, len(f.sessions))
	for k := range f.sessions {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b SessionKey) int {
		if a.Time != b.Time {
			return int(int64(a.Time) - int64(b.Time))
		}
		return int(int64(a.ID) - int64(b.ID))
	})
	for _, k := range keys {
		s := f.sessions[k]
		if s.file != nil {
			s.file.Incomplete = true
			f.endFile(s)
		}
		f.push(Item{Kind: KindJobEnd, Job: s.job})
		delete(f.sessions, k)
	}
}

// sessionOf returns the state of a record's session, announcing a job first
// met in mid-session (its SOS was on an earlier volume not given).
func (f *Files) sessionOf(rec *Record) *session {
	k := rec.Session()
	s := f.sessions[k]
	if s == nil {
		s = &session{job: &Job{Session: k}}
		f.sessions[k] = s
		f.push(Item{Kind: KindJobStart, Job: s.job})
	}
	return s
}

func (f *Files) handle(rec *Record) error {
	if rec.FileIndex < 0 {
		return f.label(rec)
	}
	s := f.sessionOf(rec)
	typ := rec.Type()
	if rec.Fragment {
		f.notice(rec, fmt.Errorf("%w: tail of a record (FileIndex %d, stream %d, %d bytes) whose beginning is on an earlier volume",
			ErrOrphanData, rec.FileIndex, typ, len(rec.Data)))
		return nil
	}
	switch typ {
	case StreamUnixAttributes, StreamUnixAttributesEx:
		return f.attributes(s, rec)
	case StreamPluginName, StreamRestoreObject:
		// These come before or instead of an attributes record, with the
		// FileIndex of the file to come.
		f.notice(rec, fmt.Errorf("stream %d (%s) for FileIndex %d not decoded", typ, StreamName(typ), rec.FileIndex))
		return nil
	}
	file := s.file
	if file == nil || file.FileIndex != rec.FileIndex {
		f.notice(rec, fmt.Errorf("%w: FileIndex %d, stream %d, %d bytes", ErrOrphanData, rec.FileIndex, typ, len(rec.Data)))
		return nil
	}
	file.End = rec.End
	switch {
	case typ == StreamFileData, typ == StreamGzipData, typ == StreamSparseData,
		typ == StreamSparseGzipData, typ == StreamCompressedData, typ == StreamSparseCompressed:
		return f.data(s, rec, typ)
	case typ == StreamMD5Digest, typ == StreamSHA1Digest, typ == StreamSHA256Digest,
		typ == StreamSHA512Digest, typ == StreamXXH3Digest, typ == StreamXXH3128Digest:
		return f.digest(s, rec, typ)
	case typ >= 1000 && typ <= 1022, typ == 15, typ == 16:
		file.ACLs = append(file.ACLs, ACL{Stream: typ, Text: string(bytes.TrimRight(rec.Data, "\x00"))})
		return nil
	case typ >= 1987 && typ <= 1999:
		return f.xattrs(file, rec)
	}
	// Encrypted, Win32, macOS fork, plugin data, signed digests and
	// anything unknown: handed out as they are, and counted.
	if file.DataStream == 0 && isDataStream(typ) {
		file.DataStream = typ
	}
	i := slices.IndexFunc(file.NotDecoded, func(c StreamCount) bool { return c.Stream == typ })
	if i < 0 {
		file.NotDecoded = append(file.NotDecoded, StreamCount{Stream: typ})
		i = len(file.NotDecoded) - 1
	}
	file.NotDecoded[i].Records++
	file.NotDecoded[i].Bytes += int64(len(rec.Data))
	f.push(Item{Kind: KindRaw, Job: s.job, File: file, Stream: typ, Data: rec.Data})
	return nil
}

func isDataStream(t int) bool {
	switch t {
	case 11, 12, 13, 20, 21, 23, 24, 25, 27, 31, 32, 33:
		return true
	}
	return false
}

func (f *Files) label(rec *Record) error {
	switch rec.FileIndex {
	case PreLabel, VolLabel:
		l, err := ParseVolumeLabel(rec.FileIndex, rec.Data)
		if err != nil {
			return err
		}
		l.Session = rec.Session()
		f.push(Item{Kind: KindVolume, Volume: l})
	case SOSLabel:
		l, err := ParseSessionLabel(rec.FileIndex, rec.Data)
		if err != nil {
			return err
		}
		k := rec.Session()
		if old := f.sessions[k]; old != nil {
			// A new SOS on a session still open: the old one never ended.
			if old.file != nil {
				old.file.Incomplete = true
				f.endFile(old)
			}
			f.push(Item{Kind: KindJobEnd, Job: old.job})
		}
		j := &Job{Session: k, Started: true}
		j.setLabel(l)
		f.sessions[k] = &session{job: j}
		f.push(Item{Kind: KindJobStart, Job: j})
	case EOSLabel:
		l, err := ParseSessionLabel(rec.FileIndex, rec.Data)
		if err != nil {
			return err
		}
		s := f.sessionOf(rec)
		if s.file != nil {
			f.endFile(s)
		}
		j := s.job
		if !j.Started {
			j.setLabel(l)
		}
		j.Ended = true
		j.EndTime = l.WriteTime
		j.Status = l.JobStatus
		j.JobFiles, j.JobBytes, j.JobErrors = l.JobFiles, l.JobBytes, l.JobErrors
		j.StartBlock, j.EndBlock, j.StartFile, j.EndFile = l.StartBlock, l.EndBlock, l.StartFile, l.EndFile
		f.push(Item{Kind: KindJobEnd, Job: j})
		delete(f.sessions, rec.Session())
	default:
		f.notice(rec, fmt.Errorf("label record type %d ignored", rec.FileIndex))
	}
	return nil
}

func (j *Job) setLabel(l *SessionLabel) {
	j.JobID, j.Job, j.Name, j.Client = l.JobID, l.Job, l.JobName, l.ClientName
	j.FileSet, j.FileSetMD5, j.Pool, j.PoolType = l.FileSet, l.FileSetMD5, l.PoolName, l.PoolType
	j.Type, j.Level, j.VerNum = l.JobType, l.JobLevel, l.VerNum
	if !l.End {
		j.StartTime = l.WriteTime
	}
}

func (f *Files) attributes(s *session, rec *Record) error {
	if s.file != nil {
		f.endFile(s)
	}
	file, err := ParseAttributes(rec.Data)
	if err != nil {
		return err
	}
	if file.FileIndex != rec.FileIndex {
		return fmt.Errorf("%w: %s: FileIndex %d in a record of FileIndex %d", ErrAttributes, file.Path, file.FileIndex, rec.FileIndex)
	}
	file.Job = s.job
	file.AttrStream = rec.Type()
	file.End = rec.End
	s.job.Files++
	s.file, s.next, s.v = file, 0, nil
	if !f.noVerify {
		s.v = newVerifier(s.algo)
	}
	f.push(Item{Kind: KindFile, Job: s.job, File: file})
	return nil
}

// endFile ends the session's current file.
func (f *Files) endFile(s *session) {
	file := s.file
	s.file = nil
	if file.Digest == nil && file.Written > 0 {
		s.algo = "-" // files of this job carry no digest
	}
	s.v = nil
	f.push(Item{Kind: KindFileEnd, Job: s.job, File: file})
}

func (f *Files) data(s *session, rec *Record, typ int) error {
	file := s.file
	p := rec.Data
	off := s.next
	if sparseStream(typ) {
		if len(p) < 8 {
			return fmt.Errorf("%w: %s: sparse record of %d bytes has no offset", ErrData, file.Path, len(p))
		}
		o := binary.BigEndian.Uint64(p)
		p = p[8:]
		// With STREAM_BIT_OFFSETS the offset is informational only.
		if rec.Stream&streamBitOffsets == 0 {
			if o > 1<<62 || int64(o) < s.next {
				return fmt.Errorf("%w: %s: sparse offset %d (content already reaches %d)", ErrData, file.Path, o, s.next)
			}
			off = int64(o)
		}
	}
	var err error
	if pre := f.cur; pre != nil && pre.decoded {
		p, err = pre.out, pre.derr
	} else {
		p, err = f.dec.payload(typ, p)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", file.Path, err)
	}
	if file.DataStream == 0 {
		file.DataStream = typ
	}
	if s.v != nil {
		s.v.Write(p)
	}
	s.next = off + int64(len(p))
	file.Written += int64(len(p))
	f.push(Item{Kind: KindData, Job: s.job, File: file, Offset: off, Data: p})
	return nil
}

func digestAlgo(typ, n int) (string, int) {
	switch typ {
	case StreamMD5Digest:
		return "MD5", 16
	case StreamSHA1Digest:
		return "SHA1", 20
	case StreamSHA256Digest:
		return "SHA256", 32
	case StreamSHA512Digest:
		return "SHA512", 64
	case StreamXXH3Digest:
		if n == 16 {
			return "XXH3-128", 16
		}
		return "XXH3-64", 8
	case StreamXXH3128Digest:
		return "XXH3-128", 16
	}
	return "", 0
}

func (f *Files) digest(s *session, rec *Record, typ int) error {
	file := s.file
	algo, size := digestAlgo(typ, len(rec.Data))
	if len(rec.Data) != size {
		return fmt.Errorf("%w: %s: %s digest of %d bytes, want %d", ErrData, file.Path, algo, len(rec.Data), size)
	}
	file.Digest = &Digest{Algo: algo, Sum: bytes.Clone(rec.Data)}
	if s.v != nil {
		s.v.Check(file)
	}
	s.algo = hashOf(algo)
	return nil
}

// xattrMagic starts each attribute of an xattr stream.
const xattrMagic = 0x005C5884

// xattrs decodes an xattr stream: repeated {magic u32, name length u32, name,
// value length u32, value}, all big-endian.
func (f *Files) xattrs(file *File, rec *Record) error {
	p := rec.Data
	for len(p) > 0 {
		if len(p) < 8 || binary.BigEndian.Uint32(p) != xattrMagic {
			return fmt.Errorf("%w: %s: bad xattr stream %d at byte %d", ErrData, file.Path, rec.Type(), len(rec.Data)-len(p))
		}
		nl := binary.BigEndian.Uint32(p[4:])
		p = p[8:]
		if uint64(nl)+4 > uint64(len(p)) {
			return fmt.Errorf("%w: %s: xattr name length %d overruns the record", ErrData, file.Path, nl)
		}
		name := string(bytes.TrimRight(p[:nl], "\x00"))
		p = p[nl:]
		vl := binary.BigEndian.Uint32(p)
		p = p[4:]
		if uint64(vl) > uint64(len(p)) {
			return fmt.Errorf("%w: %s: xattr %s value length %d overruns the record", ErrData, file.Path, name, vl)
		}
		file.Xattrs = append(file.Xattrs, Xattr{Name: name, Value: bytes.Clone(p[:vl])})
		p = p[vl:]
	}
	return nil
}

// StreamName returns a short description of a stream type, for reports.
func StreamName(t int) string {
	switch t {
	case 11:
		return "Win32 data"
	case 12:
		return "Win32 GZIP data"
	case 13:
		return "macOS resource fork"
	case 14:
		return "HFS+ attributes"
	case 19:
		return "signed digest"
	case 20, 21, 23, 24, 25, 32, 33:
		return "encrypted data"
	case 22:
		return "encrypted session data"
	case 26:
		return "plugin name"
	case 27:
		return "plugin data"
	case 28:
		return "restore object"
	case 31:
		return "Win32 compressed data"
	}
	if t >= 1000 && t <= 1022 {
		return "ACL"
	}
	if t >= 1987 && t <= 1999 {
		return "xattr"
	}
	return fmt.Sprintf("stream %d", t)
}
