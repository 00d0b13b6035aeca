// Package sdplugin is openbrc's Bacula storage daemon (SD) plugin: loaded
// by bacula-sd, it tells replicad when a job starts and ends and when a
// device is opened and closed, so that replicad reacts at once instead of
// waiting for its next look at the volumes. The plugin reads no data: the
// SD plugin interface has no record or block events (see section 11.5 of
// the format description); replicad reads the volumes itself.
//
// # Building and installing
//
// The shared library is built from examples/replica-sd (cgo and a C
// compiler are needed):
//
//	go build -buildmode=c-shared -o brc-replica-sd.so ./examples/replica-sd
//
// Install it as a regular file (the SD ignores symbolic links) whose name
// ends in -sd.so, in the directory named by Plugin Directory in the
// Storage resource of bacula-sd.conf, e.g. Debian's default:
//
//	install -m 0644 brc-replica-sd.so /usr/lib/bacula/brc-replica-sd.so
//
//	Storage {
//	  Name = ...
//	  Plugin Directory = /usr/lib/bacula
//	  ...
//	}
//
// and restart the SD (it loads plugins only at start; SIGHUP does nothing).
// "status storage" in bconsole then lists "Plugin: brc-replica-sd.so(1.0)";
// the SD's "Loaded plugin: brc-replica-sd.so" message shows in its debug
// output (-d 400) and in the output of bls and bextract, which load the
// plugins of the Plugin Directory of their configuration too.
//
// One library serves SD plugin interface 12 (Bacula 7.0 - 9.6) and 13
// (Bacula 11.0 and later): loadPlugin answers the version the SD offers
// and refuses any other (bRC_Error, and a line on standard error).
// Interface 12 is tested against the real bacula-sd 9.6.7; interface 13
// only against a C host written from the specification.
//
// # Configuration and the socket
//
// At load time the plugin reads /etc/openbrc/replica-sd.conf (ConfFile;
// the environment variable BRC_REPLICA_SD_CONF of the SD process names
// another file, for tests) when it exists: key = value lines, # comments.
//
//	socket = /run/openbrc/replicad.sock  # replicad's socket
//	require_replica = no                 # yes: fail a job at device open when replicad is unreachable
//	summary_wait = 30                    # seconds JobEnd waits for replicad's summary; 0: none
//
// Unknown keys and bad values are not fatal: each gives a warning, on
// standard error at load time and as an M_WARNING message in the job log
// of the first job, and the key keeps its default. Changes take effect
// when the SD restarts.
//
// The socket is, in this order: socket= of the file, the environment
// variable BRC_REPLICA_SOCKET of the SD process (with systemd, set it with
// Environment= in a drop-in of bacula-sd.service), DefaultSocket
// (/run/openbrc/replicad.sock). The SD runs as the bacula user: replicad
// accepts it by default (package internal/sdevent checks every peer). Each
// event is one JSON line of internal/sdevent, sent on a connection of its
// own:
//
//	SD event            sdevent type     sent when
//	(load)              plugin_loaded    loadPlugin succeeded (Info: the program, e.g. bacula-sd or bls;
//	                                     a tool may exit before it is sent)
//	1 JobStart          job_start        for jobs with a JobId (not 0); synchronously
//	2 JobEnd            job_end          idem; a request for the job's summary (want_summary)
//	4 DeviceOpen        device_open      idem; synchronously with require_replica=yes
//	6 DeviceClose       device_close     idem (usually twice per job)
//	(unload)            plugin_unloaded  unloadPlugin (the SD's SIGTERM)
//
// Job events carry the JobId and the unique Job name (getBaculaValue
// variables 4 and 11), the PID of the loading process and the interface
// version. Events of JobId 0 (the SD's system JCR at start-up, the tools
// bls, bextract, ...) are not sent. DeviceInit and DeviceTryOpen are
// ignored.
//
// # The job log
//
// The plugin writes to the Bacula job log (the SD's JobMessage):
//
//   - at JobStart, "openbrc: replicad notified of job <Job>" (M_INFO), or
//     "openbrc: replicad unreachable at <socket>: <error>" (M_WARNING);
//   - at JobEnd, replicad's summary of the job, one M_INFO line per target,
//     e.g. "openbrc: /mnt/dr1: 54 files, 350273 bytes, 0 skipped, 0 failed,
//     up to date" or "..., 1 job behind"; when replicad was not finished
//     with the job within summary_wait, a line says so and the targets
//     tell what is known; when it cannot be asked, one M_WARNING line;
//   - when queued events were dropped, one M_INFO line at most once per
//     DefaultReportEvery ("brc-replica-sd: N event(s) not delivered ...").
//
// # Where the plugin blocks the SD
//
// The plugin calls the SD only from the threads that called it, and
// blocks them only here, each time bounded:
//
//   - JobStart: job_start is sent synchronously, at most DefaultTimeout
//     (1 s); a replicad that is not running fails at once (no socket, or
//     connection refused); only a hung one costs the full second.
//   - DeviceOpen with require_replica=yes: device_open is sent
//     synchronously, at most DefaultRequireTimeout (2 s). If it cannot be
//     delivered, the plugin writes an M_ERROR line and returns bRC_Error:
//     the SD does not open the device and fails the job (M_FATAL, spec
//     section 11.4). The SD's own JCR (JobId 0, AlwaysOpen devices at
//     start-up) is never refused. The plugin cannot tell a backup from a
//     restore (the SD gives it no job type): with require_replica=yes,
//     restores through this SD fail too while replicad is down; set it to
//     no to restore during such an outage. With require_replica=no
//     (default) device_open is queued and never blocks.
//   - JobEnd: the plugin asks replicad for its summary of the job and waits
//     for the answer on the SD's thread: the end of every job is delayed by
//     at most summary_wait (+ SummaryMargin, 0.5 s). replicad answers as
//     soon as every target is finished with the job (the pass replicating
//     it ended), so usually within seconds of the job's end; at once for a
//     job that wrote nothing to the volumes (after 3 s) or when replicad
//     is not running. summary_wait = 0 turns the summary off (job_end is
//     then queued).
//
// Everything else (device_close, plugin_loaded, plugin_unloaded, and
// device_open without require_replica) goes into a bounded queue
// (DefaultQueueSize), which one goroutine sends with a timeout of
// DefaultTimeout per event. Events that do not fit in the queue, or that
// cannot be delivered, are dropped and counted. The drop report is
// informational: with 9.6.7 such a job still ends "Backup OK" (JobStatus
// T). Every queued event also gets a debug message at level 100.
// unloadPlugin waits at most DefaultFlush for the queue.
//
// # The license token
//
// The SD checks psdInfo.plugin_license against a fixed list: 9.6.7
// accepts "Bacula AGPLv3", "AGPLv3" and "Bacula"; 11.0 and later accept only
// "Bacula AGPLv3" and "AGPLv3". The field is an interface token that the SD
// compares, not a license grant, and this plugin is MIT-licensed code of
// its own. Hence, per interface (Negotiate):
//
//   - 12 (Bacula 9.6): "Bacula" (LicenseV12), which claims no license
//     the code does not have. Verified: bacula-sd 9.6.7 loads the plugin
//     with it.
//   - 13 (Bacula 11.0+): "AGPLv3" (LicenseV13), because the SD refuses every
//     other string and there is no neutral one left. It is accurate as far
//     as a token can be: MIT code may be combined with and distributed
//     under the AGPLv3, as it is when loaded into the AGPLv3 SD; it does
//     not relicense the plugin. Not verified against a real 11.0+ SD (only
//     9.6.7 is available to the tests).
//
// # ABI
//
// The structs are described in brc_sd.h, written from the format
// description (section 11.2; static assertions pin sizes and offsets for
// LP64). brc_sd.c holds loadPlugin, unloadPlugin, the psdFuncs entry points
// and psdInfo/psdFuncs as static C variables (the SD keeps the pointers for
// the life of the process); the license tokens are C strings allocated once
// and never freed. The SD's variadic callbacks (JobMessage, DebugMessage,
// registerBaculaEvents) are called by C shims, the messages with the
// format "%s". pContext holds an instance id, never a Go pointer;
// handleGlobalPluginEvent is NULL; getPluginValue and setPluginValue (which
// the SD never calls) return bRC_Error. A Go c-shared library is never
// unmapped (DF_1_NODELETE), so the SD's dlclose after a refused load or at
// exit is harmless.
//
// All decisions (Negotiate, EventType, the configuration, RequireDecision,
// FormatSummary, the instances, the queue and its drop policy) are plain
// Go in Plugin and build without cgo; only cgo.go and brc_sd.c need it.
//
// # Tests
//
// go test ./sdplugin/ runs the unit tests and host_test.go, which builds
// the library and a C host (testdata/host.c) that loads it like the SD
// does, for interfaces 12, 13 and refused ones, with a fake replicad that
// answers summaries, none, or one that never answers, and require_replica. The test against the real
// bacula-sd 9.6.7 of scripts/lab needs root and the lab's packages:
//
//	go test -tags integration -count=1 -run RealSD -v ./sdplugin/
package sdplugin
