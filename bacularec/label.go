package bacularec

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"
)

// Label record types: the negative FileIndex values of label records.
const (
	PreLabel = -1 // volume labeled but never written
	VolLabel = -2 // volume label
	EOMLabel = -3 // defined, never written
	SOSLabel = -4 // start of session
	EOSLabel = -5 // end of session
	EOTLabel = -6 // defined, never written
)

// Label ids and the format versions we accept.
const (
	BaculaID = "Bacula 1.0 immortal\n"
	BareosID = "Bareos 2.0 immortal\n"
	oldID    = "Bacula 0.9 mortal\n"
)

// VolumeLabel is a decoded PRE_LABEL or VOL_LABEL record.
type VolumeLabel struct {
	Pre            bool   // PRE_LABEL: labeled, never written
	ID             string // "Bacula 1.0 immortal\n", "Bareos 2.0 immortal\n", ...
	VerNum         uint32 // 11 for Bacula 9.x-15.x, 20 for Bareos
	LabelTime      time.Time
	WriteTime      time.Time
	VolumeName     string
	PrevVolumeName string
	PoolName       string
	PoolType       string
	MediaType      string
	HostName       string
	LabelProg      string
	ProgVersion    string
	ProgDate       string
	// Fields added in Bacula 9.0; zero when the label predates them.
	FirstData     uint64
	FileAlignment uint32
	PaddingSize   uint32
	BlockSize     uint32
	// Session of the job that wrote the label.
	Session SessionKey
}

// SessionLabel is a decoded SOS or EOS record. The EOS-only fields are zero
// in an SOS label.
type SessionLabel struct {
	End        bool // EOS
	ID         string
	VerNum     uint32
	JobID      uint32
	WriteTime  time.Time
	PoolName   string
	PoolType   string
	JobName    string
	ClientName string
	Job        string
	FileSet    string
	JobType    byte
	JobLevel   byte
	FileSetMD5 string
	JobFiles   uint32
	JobBytes   uint64
	StartBlock uint32
	EndBlock   uint32
	StartFile  uint32
	EndFile    uint32
	JobErrors  uint32
	JobStatus  byte
}

// maxLabelString bounds one string field of a label. Bacula's names are at
// most 128 bytes; ProgVersion and the like are short. 2 KiB is generous.
const maxLabelString = 2048

// unser reads big-endian fields and NUL-terminated strings from a label and
// remembers the first error.
type unser struct {
	b   []byte
	off int
	err error
}

func (u *unser) fail(what string) {
	if u.err == nil {
		u.err = fmt.Errorf("%w: %s truncated at byte %d", ErrLabel, what, u.off)
	}
}

func (u *unser) more() bool { return u.err == nil && u.off < len(u.b) }

func (u *unser) u32(what string) uint32 {
	if u.err != nil || len(u.b)-u.off < 4 {
		u.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint32(u.b[u.off:])
	u.off += 4
	return v
}

func (u *unser) u64(what string) uint64 {
	if u.err != nil || len(u.b)-u.off < 8 {
		u.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint64(u.b[u.off:])
	u.off += 8
	return v
}

func (u *unser) str(what string) string {
	if u.err != nil {
		return ""
	}
	rest := u.b[u.off:]
	n := len(rest)
	if n > maxLabelString+1 {
		n = maxLabelString + 1
	}
	for i := 0; i < n; i++ {
		if rest[i] == 0 {
			u.off += i + 1
			return string(rest[:i])
		}
	}
	u.fail(what)
	return ""
}

// btime converts Bacula's microseconds-since-epoch to a time.
func btime(us uint64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(us)).UTC()
}

// julian converts the float date/time pair of VerNum ≤ 10 labels (Julian day
// number, fraction of day) to a time.
func julian(day, frac float64) time.Time {
	if day == 0 {
		return time.Time{}
	}
	const unixEpochJD = 2440587.5
	sec := (day + frac - unixEpochJD) * 86400
	return time.Unix(int64(math.Round(sec)), 0).UTC()
}

func checkLabelID(id string, ver uint32) error {
	switch {
	case id == BaculaID && (ver >= 9 && ver <= 11 || ver == 10000 || ver == 40000):
		return nil
	case id == BareosID && ver == 20:
		return nil
	case id == BareosID && ver == 11, id == oldID:
		return nil
	case strings.HasPrefix(id, "Bacula 1.0 "):
		return fmt.Errorf("%w: unsupported label %q version %d", ErrLabel, strings.TrimSpace(id), ver)
	}
	return fmt.Errorf("%w: unknown label id %q version %d", ErrLabel, strings.TrimSpace(id), ver)
}

// labelID reads the Id and VerNum that start every label and checks that
// we know them.
func (u *unser) labelID() (string, uint32, error) {
	id := u.str("Id")
	ver := u.u32("VerNum")
	if u.err != nil {
		return "", 0, u.err
	}
	return id, ver, checkLabelID(id, ver)
}

// ParseVolumeLabel decodes the data of a PRE_LABEL or VOL_LABEL record, as
// written (Bacula 9.x's own reader is one byte off for the 9.0 fields; we
// follow the writer). Fields missing from older labels are left zero.
func ParseVolumeLabel(fileIndex int32, data []byte) (*VolumeLabel, error) {
	if fileIndex != PreLabel && fileIndex != VolLabel {
		return nil, fmt.Errorf("%w: record FileIndex %d is not a volume label", ErrLabel, fileIndex)
	}
	u := &unser{b: data}
	l := &VolumeLabel{Pre: fileIndex == PreLabel}
	var err error
	if l.ID, l.VerNum, err = u.labelID(); err != nil {
		return nil, err
	}
	if l.VerNum >= 11 {
		l.LabelTime = btime(u.u64("label_btime"))
		l.WriteTime = btime(u.u64("write_btime"))
		u.u64("write_date")
		u.u64("write_time")
	} else {
		d := math.Float64frombits(u.u64("label_date"))
		t := math.Float64frombits(u.u64("label_time"))
		l.LabelTime = julian(d, t)
		wd := math.Float64frombits(u.u64("write_date"))
		wt := math.Float64frombits(u.u64("write_time"))
		l.WriteTime = julian(wd, wt)
	}
	l.VolumeName = u.str("VolumeName")
	l.PrevVolumeName = u.str("PrevVolumeName")
	l.PoolName = u.str("PoolName")
	l.PoolType = u.str("PoolType")
	l.MediaType = u.str("MediaType")
	l.HostName = u.str("HostName")
	l.LabelProg = u.str("LabelProg")
	l.ProgVersion = u.str("ProgVersion")
	l.ProgDate = u.str("ProgDate")
	if u.more() {
		u.str("AlignedVolumeName")
		l.FirstData = u.u64("FirstData")
		l.FileAlignment = u.u32("FileAlignment")
		l.PaddingSize = u.u32("PaddingSize")
		l.BlockSize = u.u32("BlockSize")
	}
	if u.err != nil {
		return nil, u.err
	}
	return l, nil
}

// ParseSessionLabel decodes the data of an SOS or EOS record. (The record's
// Stream field holds the JobId too; the label's own JobId is used.)
func ParseSessionLabel(fileIndex int32, data []byte) (*SessionLabel, error) {
	if fileIndex != SOSLabel && fileIndex != EOSLabel {
		return nil, fmt.Errorf("%w: record FileIndex %d is not a session label", ErrLabel, fileIndex)
	}
	u := &unser{b: data}
	l := &SessionLabel{End: fileIndex == EOSLabel}
	var err error
	if l.ID, l.VerNum, err = u.labelID(); err != nil {
		return nil, err
	}
	l.JobID = u.u32("JobId")
	if l.VerNum >= 11 {
		l.WriteTime = btime(u.u64("write_btime"))
		u.u64("write_time")
	} else {
		d := math.Float64frombits(u.u64("write_date"))
		t := math.Float64frombits(u.u64("write_time"))
		l.WriteTime = julian(d, t)
	}
	l.PoolName = u.str("PoolName")
	l.PoolType = u.str("PoolType")
	l.JobName = u.str("JobName")
	l.ClientName = u.str("ClientName")
	if l.VerNum >= 10 {
		l.Job = u.str("Job")
		l.FileSet = u.str("FileSetName")
		l.JobType = byte(u.u32("JobType"))
		l.JobLevel = byte(u.u32("JobLevel"))
	}
	if l.VerNum >= 11 {
		l.FileSetMD5 = u.str("FileSetMD5")
	}
	if l.End {
		l.JobFiles = u.u32("JobFiles")
		l.JobBytes = u.u64("JobBytes")
		l.StartBlock = u.u32("StartBlock")
		l.EndBlock = u.u32("EndBlock")
		l.StartFile = u.u32("StartFile")
		l.EndFile = u.u32("EndFile")
		l.JobErrors = u.u32("JobErrors")
		if l.VerNum >= 11 {
			l.JobStatus = byte(u.u32("JobStatus"))
		}
	}
	if u.err != nil {
		return nil, u.err
	}
	return l, nil
}
