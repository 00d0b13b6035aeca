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
//	internal/extract     writes the files read by bacularec under a root directory,
//	                     with full metadata, never outside it
//	internal/listing     renders volume contents as text or JSON lines
//	internal/lzo         clean-room LZO1X decoder (Bacula's LZO compression)
//	internal/fastlz      clean-room FastLZ decoder and Bareos' block container
//	examples/replicad    the daemon and command-line tool that wires the packages
//
// openbrc is written from a clean-room description of the volume format and
// from the observed behaviour of Bacula's own programs; it contains no code
// from Bacula or Bareos.
package brc
