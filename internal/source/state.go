package source

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/atomicfile"
)

// stateVersion is the format of the Follow state file.
const stateVersion = 1

// followState is what Follow persists: where to start reading each volume
// again, and which sessions not to deliver again.
type followState struct {
	Version int           `json:"version"`
	Dir     string        `json:"dir"`
	Volumes []volumeState `json:"volumes"`
	// Ended are sessions already delivered whole (or given up): blocks of
	// theirs met again when re-reading from an earlier point are skipped.
	Ended []bacularec.SessionKey `json:"ended,omitempty"`
	// Foreign are sessions met without their start label: skipped.
	Foreign []bacularec.SessionKey `json:"foreign,omitempty"`
	MaxTime uint32                 `json:"max_session_time,omitempty"`
}

type volumeState struct {
	Name  string   `json:"name"`
	Label VolumeID `json:"label"`
	// Resume is the offset of the block the next run starts this volume
	// at: the end of what was read, or the first block here of the oldest
	// job not finished when the state was saved.
	Resume int64 `json:"resume"`
	// Read is the offset up to which the volume was read: only data past
	// it is new.
	Read int64 `json:"read"`
}

// VolumeID identifies one labelling of a volume: a recycled (relabelled)
// volume has a new label write time and checksum.
type VolumeID struct {
	VolumeName string `json:"volume_name"`
	LabelTime  int64  `json:"label_time_us"`
	WriteTime  int64  `json:"write_time_us"`
	CRC        uint32 `json:"label_block_crc"`
}

func loadState(path string) (*followState, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st followState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("source: state file %s: %w", path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("source: state file %s: version %d, want %d", path, st.Version, stateVersion)
	}
	return &st, nil
}

// renameAtomic moves a synced file into place and syncs the directory.
func renameAtomic(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(to))
}
