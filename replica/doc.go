// Package replica replicates the files of Bacula jobs, read by package
// bacularec, to one or more targets.
//
// A Target (Begin, Put, End) is a place files land: Mirror keeps a 1:1
// replica of the backed-up tree under a directory, Memory keeps it in
// memory for tests. Wrappers such as Limit (bandwidth) implement Unwrapper.
// Every Target passes the conformance suite in replica/replicatest.
//
// The Engine reads the volumes once and drives every target at once, each
// on its own goroutine behind its own queue: in memory up to
// Destination.QueueBytes, then in a spool file up to SpoolBytes. A slow
// target never slows the others: past its spool it is lagging, stops
// receiving the stream, and once the pass is over its unfinished job is
// replayed to it from the volumes. A target that fails (disk full,
// read-only, I/O error, mount gone) fails alone and is retried with
// backoff (RetryPolicy), the same way. The reader waits only when every
// target is full, and then only until the first of them has room. Jobs
// interleaved in the volumes (concurrent jobs) reach
// targets one after the other.
//
// Full, Incremental and Differential jobs apply in order, with the
// deletion records of accurate mode. A Differential has none for what an
// Incremental in between created and is gone again; with
// MirrorOptions.History the Mirror records the paths of each chain's
// Incrementals and Differentials since its last Full, and a Differential
// that ended OK removes those it did not contain: the replica ends as
// Bacula's restore of the latest state.
//
// The Catalog (one bbolt file in the state directory) records per target
// the outcome of each job (JobLog: a second run sends nothing twice) and,
// per regular file, what was written (Index: size, times, inode, metadata
// hash, BLAKE3 of the content and of each 1 MiB chunk), so that with
// MirrorOptions.SkipUnchanged an unchanged file costs a stat.
//
// An encrypted target (Encrypt) must not store the BLAKE3 of its files'
// plaintext: a reader of the state directory could tell equal files
// apart and confirm guesses. Its Index describes the ciphertext, and its
// EncryptedIndex (Catalog.EncryptedIndex, a bucket of its own) holds, per
// regular file, the stat of the encrypted file and, per 1 MiB span of the
// plaintext, a BLAKE3 keyed with a key derived from the master key, over
// a random salt, the span's number and the path, with the key's id:
// unchanged files cost a stat there too, and without the key the index
// shows no content equality, not even between two files or two versions
// of one. See Encrypt.
//
// # Crash safety
//
// A Mirror writes each regular file under a temporary name in its
// directory (extract.TempPrefix), flushes batches of them with syncfs and
// only then renames them into place: after a crash or kill -9 a name holds
// the old file or the whole new one, never a torn one. The JobLog marks a
// job done only after End returned, so an interrupted job is replayed by
// the next run. With MirrorOptions.Journal (replicad always sets one), the
// next Begin on the target removes the temporary names the dead writer
// left and completes an interrupted consistency-group switch; without
// one, anything named extract.TempPrefix+"*" under a target root may be
// deleted while no replication runs.
package replica
