// Package source feeds replica.Engine from volumes as the Bacula storage
// daemon writes them, pass after pass, in two ways: Follow reads the
// volume files of a File device directory (volume_dir) as they grow;
// FIFO reads a Fifo device's named pipe (fifo_path).
//
// Both implement Stream. The daemon loop is:
//
//	for {
//		open, err := s.Next(ctx) // waits for new data
//		if err != nil { ... }
//		sum, err := engine.Run(ctx, open)
//		...
//		if err := s.Commit(); err != nil { ... }
//	}
//
// with s.JobEnded(jobID) called for each job_end event of the storage
// daemon plugin: it lets a pass end as soon as its jobs are known to be
// over. Constructors do no I/O and start no goroutine.
//
// # Passes
//
// The Source returned by Next reads live the first time it is called:
// bacularec gets whole blocks only (a block is handed out once all the
// BlockLength bytes its header announces are there, so a pause of the
// writer in the middle of a header or a record is never seen as the end
// of a volume), and at the end of the data the read waits for more
// instead of returning EOF. The pass ends, at a block boundary, when every
// job it met has ended (its EOS label went by) and either nothing new came
// for Idle (default 5s), or JobEnded was called for all of them, or, on a
// FIFO, the writer closed the pipe. A job with no data for Stall (default
// 1h) ends the pass anyway; bacularec reports it unfinished (Job.Ended
// false), and Follow reads it again whole in the next pass. When the
// engine calls the Source again (to replay a job for a target that failed
// or lagged), it reads the same blocks again without waiting: Follow from
// the volume files, FIFO from the spool (or copy) file of the pass.
//
// # Follow
//
// Follow watches the directory with inotify (IN_MODIFY, IN_CLOSE_WRITE,
// IN_CREATE, IN_MOVED_TO, ...) and falls back to polling every
// PollInterval. Any regular file whose first block is a VOL_LABEL is a
// volume (a PRE_LABEL volume, labelled but never written, waits for its
// first use). Volumes are read in the order of their label's write time
// (the time the storage daemon first wrote them), then name: a job that
// fills a volume goes on in one labelled later, so reading in this order
// gives bacularec a spanning job's volumes in sequence and it joins the
// record split across them. All volumes are read through one bacularec
// Reader, switching volume at block boundaries whenever the current one
// has no whole block left: a volume appended to later (volumes of several
// pools in one directory) is picked up too.
//
// A volume that shrank below what was read, was replaced (new inode), or
// whose label block changed (relabelled) is recycled: it is reported
// (Logger warning and OnRecycle) and read again from its start; jobs that
// were being read in it are given up.
//
// Commit saves the position in the state file (JSON, written to a
// temporary file, synced, renamed over the old one, directory synced):
// for each volume its name, its label's identity (volume name, label and
// write times, CRC of the label block), the offset where the next run
// starts reading it and the offset up to which it was read. A block
// counts as read only once the engine consumed it: bacularec asks for the
// bytes after a block only after its caller took every record of the
// block. The start offset is the end of what was read, except when a job
// is not finished: then it is the block boundary where that job's first
// block lies (its SOS, or in a continuation volume the label block), so
// the job is read again whole. Jobs that ended are remembered (in the
// state file while needed) and their blocks met again are skipped: a
// restart re-reads the unfinished job only. Blocks of a job met without
// its start label (it began before anything Follow read, e.g. on a
// removed volume) are skipped with a warning: a job is replicated whole
// or not at all. A job still open when the pass ends and whose session
// belongs to an earlier run of the storage daemon (a later session time
// was seen) is abandoned: it will never end.
//
// One pass reads all the volumes of the directory, so several devices
// writing different volumes of one directory at once are read together;
// a job spanning volumes while other jobs write elsewhere works as long
// as its continuation volume is labelled after the volume it leaves.
// BB01 volumes (Bacula 1.26 and older) are read but their jobs are not
// tracked for resuming.
//
// # FIFO
//
// FIFO creates the named pipe if missing (mode 0660), opens its read end
// O_RDONLY|O_NONBLOCK, and raises its buffer with F_SETPIPE_SZ to
// PipeSize (default 1 MiB) capped by /proc/sys/fs/pipe-max-size (a
// warning says so). The storage daemon opens and closes the FIFO several
// times while labelling; it fails with ENXIO if no reader is there at
// that moment. FIFO does not keep a dummy writer open (that would hide
// the writer's close, the only end of stream a pipe has): when the writer
// closes, a new read end is opened before the old one is closed, so a
// reader is always there, the pipe and its size persist, and the new
// descriptor waits for the next writer. Opens and closes without data are
// ignored. Blocks are framed by the BlockLength of their header, never by
// a fixed read size; a block cut short by the writer's close is dropped
// with a warning. Every block of a pass is written to a spool file, from
// which the engine replays; with CopyDir, the spool is the copy, linked
// into place as <CopyDir>/<VolumeName>.vol (a timestamp is added when the
// name is taken) once the pass is over, a volume file a lagging target
// can be caught up from. FIFO has no position to save: Commit drops the
// spool.
//
// # Locating jobs
//
// Both implement Placer: after a pass, Placed lists the jobs it read whole
// (start and end labels), in start order, with the byte ranges of the
// files that hold their blocks (Extent) and the identity of each volume's
// label. ReadJobs reads such jobs again later, each alone (only the blocks
// of its session), checking first (CheckExtent), and again on the file it
// reads, that each volume still holds the same labelling and is not
// shorter: a volume deleted, truncated or relabelled since fails with
// ErrVolumeChanged instead of yielding another job's data. Follow's jobs
// lie in the volume files; FIFO's in the pass's copy in CopyDir, and
// without CopyDir in nothing that outlives the pass (JobPlace.Gone).
package source
