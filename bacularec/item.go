package bacularec

// Kind tells what an Item carries.
type Kind uint8

// Item kinds, in the order they appear for one file: KindFile, then zero or
// more KindData and KindRaw, then KindFileEnd. Items of concurrent jobs
// interleave; use Item.File.Job (or Item.Job) to tell them apart.
const (
	// KindVolume: Item.Volume is the label of the volume just opened.
	KindVolume Kind = iota + 1
	// KindJobStart: Item.Job has its SOS fields. Also returned, with
	// Job.Started false, for a session first met in mid-job.
	KindJobStart
	// KindFile: Item.File holds the attributes; content follows.
	KindFile
	// KindData: Item.Data is decoded content of Item.File at Item.Offset.
	// Offsets only grow; a gap between pieces is a hole (zeros).
	KindData
	// KindRaw: Item.Data is a record of Item.File that was not decoded
	// (Item.Stream says which); see File.NotDecoded.
	KindRaw
	// KindFileEnd: Item.File is complete (ACLs, Xattrs, Digest, DigestErr).
	KindFileEnd
	// KindJobEnd: Item.Job has its EOS fields, or Job.Ended is false when
	// the input ended before the job's EOS.
	KindJobEnd
	// KindNotice: Item.Err is a non-fatal problem (skipped bytes after a
	// resynchronisation, a data record without attributes, an unknown
	// stream). Reading goes on.
	KindNotice
)

var kindNames = [...]string{
	KindVolume: "volume", KindJobStart: "job-start", KindFile: "file", KindData: "data",
	KindRaw: "raw", KindFileEnd: "file-end", KindJobEnd: "job-end", KindNotice: "notice",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "kind?"
}

// Item is one step of the file-level iteration. Data is only valid until the
// next call to Next; File, Job and Volume pointers stay valid.
type Item struct {
	Kind   Kind
	Volume *VolumeLabel
	Job    *Job
	File   *File
	Offset int64
	Data   []byte
	Stream int // masked stream of a KindRaw record
	Err    error
}
