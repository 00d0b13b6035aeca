package replica

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/atomicfile"
	"github.com/openbrc/brc/internal/extract"
)

// journalRecord is what a Mirror's journal says while a job is being
// written: its presence at Begin means the previous writer died (kill -9,
// crash, power loss) before the end of its job.
type journalRecord struct {
	Job     string    `json:"job"`
	JobID   uint32    `json:"job_id"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// A consistency-group switch in progress: every staged file is on
	// stable storage; the renames and deletions are to be completed.
	Switch  []switchEntry `json:"switch,omitempty"`
	Deletes []string      `json:"deletes,omitempty"`
}

type switchEntry struct {
	Rel string `json:"rel"`
	Tmp string `json:"tmp"`
}

// readJournal returns the record an interrupted job left, or nil.
func readJournal(path string) (*journalRecord, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	prev := new(journalRecord)
	if err := json.Unmarshal(b, prev); err != nil {
		return nil, fmt.Errorf("replica: journal %s: %w", path, err)
	}
	return prev, nil
}

// startJournal records that job starts on the target.
func startJournal(path string, job *bacularec.Job) error {
	rec := journalRecord{Job: jobName(job), JobID: job.JobID, PID: os.Getpid(), Started: time.Now().UTC()}
	b, _ := json.Marshal(rec)
	return writeFileAtomic(path, b)
}

// closeJournal records that the target is consistent again.
func closeJournal(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

// writeFileAtomic replaces path with b, durably, making its directory if
// needed.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o600)
}

// removeTemps deletes every temporary name (extract.TempPrefix) under
// root, never following a symbolic link, and returns how many it removed.
// Only a writer that died leaves them, so this runs after an interrupted
// job, before anything else is written.
func removeTemps(root string) (int, error) {
	n := 0
	var errs []error
	var walk func(dir string)
	walk = func(dir string) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, err)
			return
		}
		for _, d := range ents {
			p := filepath.Join(dir, d.Name())
			if strings.HasPrefix(d.Name(), extract.TempPrefix) && !d.IsDir() {
				if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				} else {
					n++
				}
				continue
			}
			if d.IsDir() { // DirEntry of a symlink is never IsDir
				walk(p)
			}
		}
	}
	walk(root)
	if len(errs) > 0 {
		return n, fmt.Errorf("replica: removing temporary files under %s: %w", root, errors.Join(errs...))
	}
	return n, nil
}
