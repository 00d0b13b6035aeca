package source

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/openbrc/brc/bacularec"
)

// Block layout (docs/bacula-format.md §3.1): CheckSum/Options u32,
// BlockLength u32, BlockNumber u32, id "BB01"/"BB02"/"BB03", then for BB02
// and BB03 VolSessionId u32 and VolSessionTime u32 (BB03 adds a 64-bit
// checksum). Records: FileIndex i32, Stream i32, DataLength u32, preceded
// in BB01 by the session pair.
const (
	minHeader = 16
	recHdr    = 12
	recHdrV1  = 20
)

var errNotBlock = errors.New("not a Bacula block header")

// headerLen returns the header length announced by the first 16 bytes of
// a block, or an error when they are not a block header.
func headerLen(h []byte) (version, hl int, err error) {
	if len(h) < minHeader || h[12] != 'B' || h[13] != 'B' || h[14] != '0' {
		return 0, 0, errNotBlock
	}
	switch h[15] {
	case '1':
		return 1, 16, nil
	case '2':
		return 2, 24, nil
	case '3':
		return 3, 32, nil
	}
	return 0, 0, errNotBlock
}

// blockLength returns the BlockLength of a header (at least 16 bytes),
// checked against the header length and Bacula's sanity limit.
func blockLength(h []byte) (int, error) {
	_, hl, err := headerLen(h)
	if err != nil {
		return 0, fmt.Errorf("%w: id %q", err, h[12:16])
	}
	n := binary.BigEndian.Uint32(h[4:])
	if n < uint32(hl) || n > bacularec.MaxBlockLength {
		return 0, fmt.Errorf("bad block length %d", n)
	}
	return int(n), nil
}

// blockInfo is what the sources need to know about a block: its session,
// the labels it holds.
type blockInfo struct {
	version int
	length  int
	session bacularec.SessionKey // BB02/BB03
	// label is set when the block holds a volume label (VOL_LABEL or
	// PRE_LABEL) as its first record.
	label     *bacularec.VolumeLabel
	preLabel  bool
	onlyLabel bool // nothing but the volume label
	sos       []sessionStart
	eos       []bacularec.SessionKey
	sessions  []bacularec.SessionKey // BB01: the sessions of its records
}

type sessionStart struct {
	key   bacularec.SessionKey
	jobID uint32
	job   string // unique job name
}

// parseBlock reads the record headers of a whole block. It does not check
// the checksum: bacularec does.
func parseBlock(b []byte) (blockInfo, error) {
	var bi blockInfo
	v, hl, err := headerLen(b)
	if err != nil {
		return bi, err
	}
	n, err := blockLength(b)
	if err != nil {
		return bi, err
	}
	if n > len(b) {
		return bi, fmt.Errorf("block of %d bytes, %d present", n, len(b))
	}
	b = b[:n]
	bi.version, bi.length = v, n
	if v >= 2 {
		bi.session = bacularec.SessionKey{ID: binary.BigEndian.Uint32(b[16:]), Time: binary.BigEndian.Uint32(b[20:])}
	}
	rh := recHdr
	if v == 1 {
		rh = recHdrV1
	}
	pos, nrec := hl, 0
	for pos+rh <= len(b) {
		h := b[pos : pos+rh]
		sess := bi.session
		if v == 1 {
			sess = bacularec.SessionKey{ID: binary.BigEndian.Uint32(h), Time: binary.BigEndian.Uint32(h[4:])}
			h = h[8:]
			bi.sessions = append(bi.sessions, sess)
		}
		fi := int32(binary.BigEndian.Uint32(h))
		stream := int32(binary.BigEndian.Uint32(h[4:]))
		dl := int(binary.BigEndian.Uint32(h[8:]))
		pos += rh
		avail := len(b) - pos
		whole := dl <= avail
		data := b[pos : pos+min(dl, avail)]
		pos += len(data)
		nrec++
		if stream < 0 {
			continue // continuation piece of a record
		}
		switch fi {
		case bacularec.VolLabel, bacularec.PreLabel:
			if nrec == 1 && whole {
				if l, err := bacularec.ParseVolumeLabel(fi, data); err == nil {
					bi.label, bi.preLabel = l, fi == bacularec.PreLabel
				}
			}
		case bacularec.SOSLabel:
			s := sessionStart{key: sess}
			if whole {
				if l, err := bacularec.ParseSessionLabel(fi, data); err == nil {
					s.jobID, s.job = l.JobID, l.Job
				}
			}
			bi.sos = append(bi.sos, s)
		case bacularec.EOSLabel:
			bi.eos = append(bi.eos, sess)
		}
	}
	bi.onlyLabel = bi.label != nil && nrec == 1
	return bi, nil
}

func (bi *blockInfo) hasSOS(k bacularec.SessionKey) bool {
	for _, s := range bi.sos {
		if s.key == k {
			return true
		}
	}
	return false
}
