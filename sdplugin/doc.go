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
// # The socket
//
// Events go to replicad's Unix socket, DefaultSocket
// (/run/openbrc/replicad.sock), or the path in the environment variable
// BRC_PLUGIN_SOCKET of the SD process (read once, at load time; with
// systemd, set it with Environment= in a drop-in of bacula-sd.service).
// The SD runs as the bacula user: replicad accepts it by default (package
// internal/sdevent checks every peer). Each event is one JSON line of
// internal/sdevent, sent on a connection of its own:
//
//	SD event            sdevent type     sent when
//	(load)              plugin_loaded    loadPlugin succeeded (Info: the program, e.g. bacula-sd or bls;
//	                                     a tool may exit before it is sent)
//	1 JobStart          job_start        for jobs with a JobId (not 0)
//	2 JobEnd            job_end          idem
//	4 DeviceOpen        device_open      idem
//	6 DeviceClose       device_close     idem (usually twice per job)
//	(unload)            plugin_unloaded  unloadPlugin (the SD's SIGTERM)
//
// Job events carry the JobId and the unique Job name (getBaculaValue
// variables 4 and 11), the PID of the loading process and the interface
// version. Events of JobId 0 (the SD's system JCR at start-up, the tools
// bls, bextract, ...) are not sent. DeviceInit and DeviceTryOpen are
// ignored.
//
// # Never in the SD's way
//
// Every event returns bRC_OK: the plugin never vetoes a reservation or a
// device open, and never fails a job. handlePluginEvent only puts the
// event into a bounded queue (DefaultQueueSize) and returns; one goroutine
// sends the queue with a timeout of DefaultTimeout per event. Events that
// do not fit in the queue, or that cannot be delivered (replicad not
// running, socket missing, refused), are dropped and counted; the next job
// event after a drop writes one job message of type M_INFO ("brc-replica-sd:
// N event(s) not delivered to replicad at PATH ..."), at most once per
// DefaultReportEvery, from the SD's own thread (the plugin calls the SD only
// from the threads that called it). It is informational: with 9.6.7 such a
// job still ends "Backup OK" (JobStatus T). Every queued event also gets a
// debug message at level 100. unloadPlugin waits at most DefaultFlush for
// the queue.
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
// All decisions (Negotiate, EventType, the instances, the queue and its
// drop policy) are plain Go in Plugin and build without cgo; only cgo.go
// and brc_sd.c need it.
//
// # Tests
//
// go test ./sdplugin/ runs the unit tests and host_test.go, which builds
// the library and a C host (testdata/host.c) that loads it like the SD
// does, for interfaces 12, 13 and refused ones. The test against the real
// bacula-sd 9.6.7 of scripts/lab needs root and the lab's packages:
//
//	go test -tags integration -count=1 -run RealSD -v ./sdplugin/
package sdplugin
