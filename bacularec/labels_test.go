package bacularec

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// Serialisers for labels, the writer side of ParseVolumeLabel and
// ParseSessionLabel, used to build synthetic volumes (Bareos, old versions).

type ser struct{ b []byte }

func (s *ser) str(v string) *ser { s.b = append(append(s.b, v...), 0); return s }
func (s *ser) u32(v uint32) *ser { s.b = binary.BigEndian.AppendUint32(s.b, v); return s }
func (s *ser) u64(v uint64) *ser { s.b = binary.BigEndian.AppendUint64(s.b, v); return s }

func volLabelData(id string, ver uint32, name string, t time.Time) []byte {
	s := (&ser{}).str(id).u32(ver).u64(uint64(t.UnixMicro())).u64(uint64(t.UnixMicro())).u64(0).u64(0)
	s.str(name).str("").str("Full").str("Backup").str("File").str("host").str("test-sd").
		str("Ver. 1.0 test ").str("Build test ").str("").u64(0).u32(0).u32(0).u32(1 << 20)
	return s.b
}

func sessionLabelData(id string, ver uint32, jobID uint32, end bool, status byte, t time.Time) []byte {
	s := (&ser{}).str(id).u32(ver).u32(jobID).u64(uint64(t.UnixMicro())).u64(0)
	s.str("Full").str("Backup").str("Job1").str("client-fd").str("Job1.2026-01-01_00.00.00_01").
		str("FS1").u32('B').u32('F').str("md5text")
	if end {
		s.u32(3).u64(12345).u32(100).u32(200).u32(0).u32(0).u32(0).u32(uint32(status))
	}
	return s.b
}

func TestVolumeLabel(t *testing.T) {
	now := time.Date(2026, 11, 27, 3, 15, 58, 123456000, time.UTC)
	l, err := ParseVolumeLabel(VolLabel, volLabelData(BareosID, 20, "Full-0001", now))
	if err != nil {
		t.Fatal(err)
	}
	if l.VolumeName != "Full-0001" || l.PoolName != "Full" || l.MediaType != "File" || !l.LabelTime.Equal(now) ||
		l.BlockSize != 1<<20 || l.VerNum != 20 || l.Pre {
		t.Fatalf("label %+v", l)
	}
	// Labels written before Bacula 9.0 stop after ProgDate.
	short := (&ser{}).str(BaculaID).u32(11).u64(1).u64(2).u64(0).u64(0).str("V").str("").str("P").str("Backup").
		str("File").str("h").str("sd").str("Ver. 7").str("Build").b
	if l, err := ParseVolumeLabel(PreLabel, short); err != nil || l.VolumeName != "V" || !l.Pre || l.BlockSize != 0 {
		t.Fatalf("pre-9.0 label %+v, %v", l, err)
	}
	for _, tc := range []struct {
		name string
		fi   int32
		data []byte
		want error
	}{
		{"not a volume label", SOSLabel, volLabelData(BaculaID, 11, "V", now), ErrLabel},
		{"unknown id", VolLabel, volLabelData("Amanda 1.0\n", 11, "V", now), ErrLabel},
		{"bad version", VolLabel, volLabelData(BaculaID, 12, "V", now), ErrLabel},
		{"truncated", VolLabel, volLabelData(BaculaID, 11, "V", now)[:40], ErrLabel},
		{"no NUL", VolLabel, []byte("Bacula 1.0 immortal\n"), ErrLabel},
	} {
		if _, err := ParseVolumeLabel(tc.fi, tc.data); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestSessionLabel(t *testing.T) {
	now := time.Unix(1795749354, 0).UTC()
	l, err := ParseSessionLabel(EOSLabel, sessionLabelData(BaculaID, 11, 42, true, 'T', now))
	if err != nil {
		t.Fatal(err)
	}
	if !l.End || l.JobID != 42 || l.Job != "Job1.2026-01-01_00.00.00_01" || l.JobType != 'B' || l.JobLevel != 'F' ||
		l.JobFiles != 3 || l.JobBytes != 12345 || l.JobStatus != 'T' || !l.WriteTime.Equal(now) || l.FileSetMD5 != "md5text" {
		t.Fatalf("EOS %+v", l)
	}
	if _, err := ParseSessionLabel(EOSLabel, sessionLabelData(BaculaID, 11, 42, false, 0, now)); !errors.Is(err, ErrLabel) {
		t.Fatalf("EOS without its end fields: %v", err)
	}
}
