// Package brc is openbrc: it makes Bacula backups instantly usable at a
// disaster-recovery site. While Bacula writes a backup, openbrc reads the
// volume data, rebuilds every file with its metadata and replicates it to
// one or more target filesystems, so the files are there to use at once,
// with no restore job.
//
// The module is a library with a thin reference daemon:
//
//	bacularec            streaming reader of Bacula (and Bareos) volumes: blocks,
//	                     records, labels, sessions, attributes, data streams
//	replica              the Target interface, the fan-out Engine, Mirror and
//	                     in-memory targets, bandwidth limits, the bbolt Catalog;
//	                     replica/replicatest is the conformance suite
//	crypt                AES-256-GCM STREAM encryption at rest, key sources
//	snapshot             lvm, zfs and btrfs snapshots with rollback
//	failover             health checks, promote and demote hooks
//	report               RPO/RTO compliance reports (JSON and Markdown)
//	internal/extract     writes the files read by bacularec under a root directory,
//	                     with full metadata, never outside it
//	internal/config      replicad's key=value configuration file
//	internal/catalogreport  the replication catalog as a report source
//	internal/run         the Runner interface for external commands
//	internal/source      follows File device volumes as they grow, reads Fifo devices
//	internal/sdevent     SD plugin to replicad events over a Unix socket
//	internal/metrics     the daemon's Prometheus metrics
//	sdplugin             the bacula-sd plugin (cgo glue only in one file);
//	                     examples/replica-sd builds it as brc-replica-sd.so
//	internal/listing     renders volume contents as text or JSON lines
//	internal/lzo         clean-room LZO1X decoder (Bacula's LZO compression)
//	internal/fastlz      clean-room FastLZ decoder and Bareos' block container
//	examples/replicad    the daemon and command-line tool that wires the packages
//
// openbrc is written from a clean-room description of the volume format and
// from the observed behaviour of Bacula's own programs; it contains no code
// from Bacula or Bareos.
package brc
