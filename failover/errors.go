package failover

import "errors"

// Sentinel errors, for errors.Is; the errors returned wrap them with
// details (the key, the file, the command).
var (
	ErrInvalidConfig = errors.New("failover: invalid configuration")
	ErrNoStateDir    = errors.New("failover: no state directory")
	ErrCorruptState  = errors.New("failover: corrupt state file")
	ErrRunning       = errors.New("failover: already running")
	ErrTimeout       = errors.New("failover: command timed out")
)
