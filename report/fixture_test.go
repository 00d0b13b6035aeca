package report

import "time"

// fixedNow is the report time of every fixture, so golden files hold.
var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) time.Time { return fixedNow.Add(-d) }

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// fixture has one target of each kind the report tells apart, listed out
// of name order: alpha (ok, RPO breaches, a file from the future, paths
// that need escaping), beta (failed: RPO and RTO breaches, a file never
// replicated, a multi-line error), gamma (lagging, bandwidth unknown) and
// delta (ok, empty).
func fixture() MemSource {
	return MemSource{
		{
			Info: TargetInfo{Name: "gamma", Root: "/mnt/dr/gamma", State: StateLagging,
				LastError: "3 jobs waiting for the volume", LastSuccess: ago(3 * time.Hour), PendingJobs: 3},
			Files: []FileRecord{
				{Path: "/srv/www/index.html", Size: 12 * kib, Replicated: ago(time.Hour), JobID: 100},
				{Path: "/srv/www/app.js", Size: 300 * kib, Replicated: ago(2 * time.Hour), JobID: 100},
				{Path: "/srv/www/logo.png", Size: 40 * kib, Replicated: ago(3 * time.Hour), JobID: 97},
				{Path: "/srv/www/my_site/conf", Size: 1 * kib, Replicated: ago(3*time.Hour + 59*time.Minute), JobID: 96},
			},
			Jobs: []JobRecord{
				{JobID: 100, Name: "WebDaily", Level: "I", Status: "T", Start: ago(3*time.Hour + 10*time.Minute),
					End: ago(3 * time.Hour), Bytes: 312 * kib, Files: 2},
			},
		},
		{
			Info: TargetInfo{Name: "alpha", Root: "/srv/dr/alpha", Bandwidth: 200 * mib, State: StateOK,
				LastSuccess: ago(time.Hour)},
			Files: []FileRecord{
				{Path: "/etc/hosts", Size: 200, Replicated: ago(30 * time.Minute), JobID: 101},
				{Path: "/home/ann/report_2025.odt", Size: 3 * mib / 2, Replicated: ago(2 * time.Hour), JobID: 101},
				{Path: "/data/x|y [draft] *final*.txt", Size: 5 * kib, Replicated: ago(5 * time.Hour), JobID: 99},
				{Path: "/data/line\nbreak|and\\pipe", Size: 1, Replicated: ago(5 * time.Hour), JobID: 99},
				{Path: "/data/old.db", Size: 10 * gib, Replicated: ago(30 * time.Hour), JobID: 90},
				{Path: "/var/log/future.log", Size: 64 * kib, Replicated: fixedNow.Add(10 * time.Minute), JobID: 102},
			},
			Jobs: []JobRecord{
				{JobID: 99, Name: "AlphaFull", Level: "F", Status: "T", Start: ago(6 * time.Hour),
					End: ago(5 * time.Hour), Bytes: 10 * gib, Files: 5, Skipped: 2},
				{JobID: 102, Name: "AlphaIncr", Level: "I", Status: "R", Start: ago(5 * time.Minute)},
				{JobID: 101, Name: "AlphaIncr", Level: "I", Status: "T", Start: ago(70 * time.Minute),
					End: ago(time.Hour), Bytes: 3*mib/2 + 200, Files: 2},
			},
		},
		{
			Info: TargetInfo{Name: "delta", Root: "/dr/delta", Bandwidth: gib, State: StateOK},
		},
		{
			Info: TargetInfo{Name: "beta", Root: "/mnt/offsite|beta", Bandwidth: 10 * mib, State: StateFailed,
				LastError:   "write /mnt/offsite/beta/vm1.qcow2: no space left | disk full\nretry 3/3 failed: <EIO> *fatal*",
				LastSuccess: ago(26 * time.Hour), PendingJobs: 2},
			Files: []FileRecord{
				{Path: "/backup/vm1.qcow2", Size: 50 * gib, Replicated: ago(26 * time.Hour), JobID: 88},
				{Path: "/backup/notes_v2.txt", Size: 900, JobID: 89},
			},
			Jobs: []JobRecord{
				{JobID: 89, Name: "VMWeekly", Level: "F", Status: "E", Start: ago(2 * time.Hour),
					End: ago(time.Hour), Bytes: 0, Files: 0, Errors: 1},
				{JobID: 88, Name: "VMWeekly", Level: "F", Status: "T", Start: ago(27 * time.Hour),
					End: ago(26 * time.Hour), Bytes: 50 * gib, Files: 1},
			},
		},
	}
}
