// Package listing renders the contents of Bacula volumes, as read by
// bacularec, for people (a table like bls) or for programs (JSON lines).
package listing

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/openbrc/brc/bacularec"
)

// Summary counts what a listing saw.
type Summary struct {
	Volumes, Jobs, Files int
	Bytes                int64 // sum of file sizes from the attributes
	Notices              int
}

// Write lists every volume label, job and file read from f. With asJSON it
// writes one JSON object per line, each with a "kind" of "volume", "job",
// "file", "job-end" or "notice".
func Write(w io.Writer, f *bacularec.Files, asJSON bool) (Summary, error) {
	var s Summary
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	emit := func(v any, text string) error {
		if asJSON {
			return enc.Encode(v)
		}
		_, err := io.WriteString(w, text)
		return err
	}
	for {
		it, err := f.Next()
		if err == io.EOF {
			return s, nil
		}
		if err != nil {
			return s, err
		}
		switch it.Kind {
		case bacularec.KindVolume:
			s.Volumes++
			err = emit(VolumeOf(it.Volume), volumeText(it.Volume))
		case bacularec.KindJobStart:
			s.Jobs++
			err = emit(JobOf(it.Job, "job"), jobText(it.Job))
		case bacularec.KindFile:
			s.Files++
			s.Bytes += it.File.Stat.Size
			err = emit(FileOf(it.File), fileText(it.File))
		case bacularec.KindJobEnd:
			err = emit(JobOf(it.Job, "job-end"), jobEndText(it.Job))
		case bacularec.KindNotice:
			s.Notices++
			err = emit(struct {
				Kind string `json:"kind"`
				Text string `json:"text"`
			}{"notice", it.Err.Error()}, "notice: "+it.Err.Error()+"\n")
		}
		if err != nil {
			return s, err
		}
	}
}

// Volume is the JSON form of a volume label.
type Volume struct {
	Kind       string    `json:"kind"`
	Name       string    `json:"name"`
	Prev       string    `json:"prev_volume,omitempty"`
	Pool       string    `json:"pool"`
	PoolType   string    `json:"pool_type"`
	MediaType  string    `json:"media_type"`
	Host       string    `json:"host"`
	LabelProg  string    `json:"label_prog"`
	Version    string    `json:"prog_version"`
	LabelID    string    `json:"label_id"`
	VerNum     uint32    `json:"vernum"`
	Labeled    time.Time `json:"labeled"`
	Written    time.Time `json:"written"`
	PreLabel   bool      `json:"prelabel,omitempty"`
	BlockSize  uint32    `json:"block_size,omitempty"`
	SessionID  uint32    `json:"vol_session_id"`
	SessionTim uint32    `json:"vol_session_time"`
}

// VolumeOf converts a label for JSON output.
func VolumeOf(l *bacularec.VolumeLabel) Volume {
	return Volume{Kind: "volume", Name: l.VolumeName, Prev: l.PrevVolumeName, Pool: l.PoolName,
		PoolType: l.PoolType, MediaType: l.MediaType, Host: l.HostName, LabelProg: l.LabelProg,
		Version: trim(l.ProgVersion), LabelID: trim(l.ID), VerNum: l.VerNum, Labeled: l.LabelTime,
		Written: l.WriteTime, PreLabel: l.Pre, BlockSize: l.BlockSize,
		SessionID: l.Session.ID, SessionTim: l.Session.Time}
}

func trim(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}

// Job is the JSON form of a job's SOS (kind "job") or EOS (kind "job-end").
type Job struct {
	Kind       string     `json:"kind"`
	JobID      uint32     `json:"jobid"`
	Job        string     `json:"job"`
	Name       string     `json:"name"`
	Client     string     `json:"client"`
	FileSet    string     `json:"fileset"`
	Pool       string     `json:"pool"`
	Type       string     `json:"type"`
	Level      string     `json:"level"`
	Start      *time.Time `json:"start,omitempty"`
	SessionID  uint32     `json:"vol_session_id"`
	SessionTim uint32     `json:"vol_session_time"`
	Started    bool       `json:"sos_seen"`
	// EOS fields (kind "job-end").
	Ended     *bool      `json:"eos_seen,omitempty"`
	End       *time.Time `json:"end,omitempty"`
	Status    string     `json:"status,omitempty"`
	JobFiles  *uint32    `json:"job_files,omitempty"`
	JobBytes  *uint64    `json:"job_bytes,omitempty"`
	JobErrors *uint32    `json:"job_errors,omitempty"`
	FilesRead *int       `json:"files_read,omitempty"`
}

func char(b byte) string {
	if b == 0 {
		return ""
	}
	return string(rune(b))
}

// JobOf converts a job for JSON output; kind "job-end" adds the EOS fields.
func JobOf(j *bacularec.Job, kind string) Job {
	o := Job{Kind: kind, JobID: j.JobID, Job: j.Job, Name: j.Name, Client: j.Client,
		FileSet: j.FileSet, Pool: j.Pool, Type: char(j.Type), Level: char(j.Level),
		SessionID: j.Session.ID, SessionTim: j.Session.Time, Started: j.Started}
	if !j.StartTime.IsZero() {
		t := j.StartTime
		o.Start = &t
	}
	if kind == "job-end" {
		ended := j.Ended
		o.Ended = &ended
		o.FilesRead = &j.Files
		if j.Ended {
			t := j.EndTime
			o.End, o.Status = &t, char(j.Status)
			o.JobFiles, o.JobBytes, o.JobErrors = &j.JobFiles, &j.JobBytes, &j.JobErrors
		}
	}
	return o
}

// File is the JSON form of a file's attributes.
type File struct {
	Kind      string    `json:"kind"`
	JobID     uint32    `json:"jobid"`
	FileIndex int32     `json:"fileindex"`
	Type      string    `json:"type"`
	Path      string    `json:"path"`
	Mode      string    `json:"mode"`
	UID       uint32    `json:"uid"`
	GID       uint32    `json:"gid"`
	Size      int64     `json:"size"`
	Mtime     time.Time `json:"mtime"`
	Link      string    `json:"link,omitempty"`
	LinkFI    int32     `json:"link_fileindex,omitempty"`
	Rdev      uint64    `json:"rdev,omitempty"`
	Stream    int32     `json:"data_stream,omitempty"`
}

// FileOf converts a file for JSON output. Paths that are not valid UTF-8
// are written with Go's quoting of the raw bytes, prefixed by "q:".
func FileOf(f *bacularec.File) File {
	return File{Kind: "file", JobID: f.Job.JobID, FileIndex: f.FileIndex, Type: f.Type.String(),
		Path: jsonPath(f.Path), Mode: fmt.Sprintf("%07o", f.Stat.Mode), UID: f.Stat.UID,
		GID: f.Stat.GID, Size: f.Stat.Size, Mtime: time.Unix(f.Stat.Mtime, 0).UTC(),
		Link: jsonPath(f.Link), LinkFI: f.Stat.LinkFI, Rdev: f.Stat.Rdev, Stream: f.Stat.DataStream}
}

func jsonPath(p string) string {
	if isUTF8(p) {
		return p
	}
	return "q:" + strconv.Quote(p)
}

func isUTF8(s string) bool {
	for _, r := range s {
		if r == '\uFFFD' {
			return false
		}
	}
	return true
}

func volumeText(l *bacularec.VolumeLabel) string {
	kind := "Volume"
	if l.Pre {
		kind = "Volume (prelabel)"
	}
	return fmt.Sprintf("%s %s  pool=%s media=%s labeled=%s by %s %s\n", kind, l.VolumeName, l.PoolName,
		l.MediaType, l.LabelTime.Format(time.DateTime), l.LabelProg, trim(l.ProgVersion))
}

func jobText(j *bacularec.Job) string {
	if !j.Started {
		return fmt.Sprintf("Job (session %s, start label not in these volumes)\n", j.Session)
	}
	return fmt.Sprintf("Job %d %s  level=%s type=%s client=%s fileset=%s pool=%s start=%s session=%s\n",
		j.JobID, j.Job, char(j.Level), char(j.Type), j.Client, j.FileSet, j.Pool,
		j.StartTime.Format(time.DateTime), j.Session)
}

func jobEndText(j *bacularec.Job) string {
	if !j.Ended {
		return fmt.Sprintf("End of job %d: volumes end before the job's end label (%d files read)\n", j.JobID, j.Files)
	}
	return fmt.Sprintf("End of job %d %s  status=%s files=%d bytes=%d errors=%d end=%s\n", j.JobID, j.Job,
		char(j.Status), j.JobFiles, j.JobBytes, j.JobErrors, j.EndTime.Format(time.DateTime))
}

func fileText(f *bacularec.File) string {
	mode := f.Stat.FileMode().String()
	if f.Type == bacularec.TypeDeleted {
		mode = "-*DELETED-"
	}
	line := fmt.Sprintf("%s %6d %6d %12d %s  %s", mode, f.Stat.UID, f.Stat.GID, f.Stat.Size,
		time.Unix(f.Stat.Mtime, 0).UTC().Format(time.DateTime), quote(f.Path))
	switch f.Type {
	case bacularec.TypeSymlink:
		line += " -> " + quote(f.Link)
	case bacularec.TypeLinkSaved:
		line += " => " + quote(f.Link)
	}
	return line + "\n"
}

// quote escapes control characters and invalid UTF-8 in a path so that one
// file stays on one line; printable text, spaces included, is kept as is.
func quote(p string) string {
	q := strconv.Quote(p)
	q = q[1 : len(q)-1]
	if len(q) == len(p) {
		return p
	}
	return strings.ReplaceAll(q, `\"`, `"`)
}
