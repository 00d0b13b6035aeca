// Command replicad is openbrc's reference daemon and command-line tool. It
// wires the library packages together and holds no logic of its own.
//
// Usage:
//
//	replicad extract -o DIR [-job JOBID] [flags] VOLUME...
//	replicad ls [-json] [flags] VOLUME...
//	replicad replicate [-c FILE] [-replay] [flags] VOLUME...
//	replicad decrypt [-c FILE] [-key-file FILE | -key-cmd COMMAND] SRC DST
//	replicad report [-c FILE] [-format json|md]
//	replicad versions [-c FILE] [-target ROOT] PATH
//	replicad restore-version [-c FILE] [-target ROOT] PATH VERSION [-o DST]
//	replicad run [-c FILE]
//	replicad check-config [-c FILE]
//	replicad status [-c FILE]
//
// Volumes are files (File devices or FIFO captures), read in the order
// given, so a job that spans volumes is read from all of them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/internal/extract"
	"github.com/openbrc/brc/internal/listing"
)

const usage = `usage: replicad <command> [flags] VOLUME...

commands:
  extract   rebuild the files of the volumes under a directory, with their metadata
  ls        list the volume labels, jobs and files of the volumes
  replicate replicate the jobs of the volumes to the targets of a configuration file
  decrypt   restore a plain tree from an encrypted target (SRC DST), for recovery
  report    print the RPO/RTO compliance report of the catalog of a configuration file
  versions  list the previous versions of a file kept on the targets (mode = retention)
  restore-version  bring a previous version of a file back on a target, or copy it (-o)
  run       the daemon: follow the storage daemon's volumes and replicate them (foreground)
  check-config  validate a configuration for run without starting anything
  status    print the status of the running daemon (JSON, from its metrics_listen)

Run "replicad <command> -h" for the flags of a command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// What replicad holds is bounded (queues, buffers), but the
		// garbage of streaming gigabytes is not collected until the heap
		// doubles; a soft limit keeps the process small and flat.
		debug.SetMemoryLimit(40 << 20)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	name := os.Args[1]
	if name == "-h" || name == "-help" || name == "--help" || name == "help" {
		fmt.Print(usage)
		return
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "replicad: unknown command %q\n\n%s", name, usage)
		os.Exit(2)
	}
	if err := cmd(ctx, os.Args[2:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "replicad %s: %v\n", name, err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// commands are replicad's subcommands by name.
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"extract":         func(ctx context.Context, args []string, _, _ io.Writer) error { return cmdExtract(ctx, args) },
	"ls":              func(_ context.Context, args []string, _, _ io.Writer) error { return cmdLs(args) },
	"decrypt":         cmdDecrypt,
	"replicate":       cmdReplicate,
	"report":          cmdReport,
	"versions":        cmdVersions,
	"restore-version": cmdRestoreVersion,
	"run":             cmdRun,
	"check-config":    cmdCheckConfig,
	"status":          cmdStatus,
}

type usageError struct{ error }

// readerFlags are the flags every command that reads volumes takes.
type readerFlags struct {
	resync bool
	strict bool
}

func (rf *readerFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&rf.resync, "resync", false, "skip damaged blocks, resynchronising at the next valid block header, instead of stopping")
	fs.BoolVar(&rf.strict, "strict-checksum", false, "refuse blocks with a zero checksum (written when Block Checksum = no)")
}

func (rf *readerFlags) files(vols []string) (*bacularec.Files, error) {
	if len(vols) == 0 {
		return nil, usageError{errors.New("no volume given")}
	}
	for _, v := range vols {
		if _, err := os.Stat(v); err != nil {
			return nil, err
		}
	}
	r := bacularec.NewMultiReader(bacularec.FileVolumes(vols...),
		bacularec.WithResync(rf.resync), bacularec.WithStrictChecksum(rf.strict))
	return bacularec.NewFiles(r), nil
}

func cmdLs(args []string) error {
	fs := flag.NewFlagSet("ls", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "write one JSON object per line (kinds: volume, job, file, job-end, notice)")
	var rf readerFlags
	rf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: replicad ls [-json] [flags] VOLUME...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	files, err := rf.files(fs.Args())
	if err != nil {
		return err
	}
	_, err = listing.Write(os.Stdout, files, *asJSON)
	return err
}

func cmdExtract(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("extract", flag.ContinueOnError)
	out := fs.String("o", "", "output `DIR`; files land at DIR/<backed-up path> (required)")
	jobs := fs.String("job", "", "extract only these `JOBIDS` (comma-separated)")
	strip := fs.String("strip-prefix", "", "remove this leading `PATH` from every backed-up path")
	noOwner := fs.Bool("no-owner", false, "do not restore owners (default: restore them when run as root)")
	keepDeleted := fs.Bool("keep-deleted", false, "ignore accurate-mode deletion records (bextract's behaviour) instead of removing those paths under DIR")
	quiet := fs.Bool("q", false, "no progress line")
	workers := fs.Int("workers", 8, "files written in parallel (1: strictly in volume order)")
	verify := fs.Bool("verify", true, "check every file against its digest record (MD5, SHA1, ...)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to `FILE` (for performance work)")
	var rf readerFlags
	rf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: replicad extract -o DIR [-job JOBID] [flags] VOLUME...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *out == "" {
		return usageError{errors.New("-o DIR is required")}
	}
	stop, err := startProfile(*cpuprofile)
	if err != nil {
		return err
	}
	defer stop()
	want, err := parseJobIDs(*jobs)
	if err != nil {
		return usageError{err}
	}
	files, err := rf.files(fs.Args())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	opt := extract.Options{
		NoOwner:     *noOwner,
		Deletions:   !*keepDeleted,
		StripPrefix: *strip,
		Logf:        func(format string, a ...any) { fmt.Fprintf(os.Stderr, "replicad extract: "+format+"\n", a...) },
	}
	if len(want) > 0 {
		opt.Filter = func(f *bacularec.File) bool { return want[f.Job.JobID] }
	}
	var progress func(extract.Summary)
	if !*quiet && isTerminal(os.Stderr) {
		progress = progressLine(os.Stderr)
	}
	sum, err := extract.Run(ctx, files, *out, opt, extract.RunOptions{
		Workers:  *workers,
		NoVerify: !*verify,
		Progress: progress,
		Errorf:   func(e error) { fmt.Fprintf(os.Stderr, "replicad extract: %v\n", e) },
	})
	if progress != nil {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
	fmt.Fprint(os.Stdout, sum.String())
	if err != nil {
		return err
	}
	if sum.Failed() {
		return errors.New("some files were not extracted faithfully (see above)")
	}
	return nil
}

func parseJobIDs(s string) (map[uint32]bool, error) {
	if s == "" {
		return nil, nil
	}
	m := map[uint32]bool{}
	for _, f := range strings.Split(s, ",") {
		id, err := strconv.ParseUint(strings.TrimSpace(f), 10, 32)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("-job: bad JobId %q", f)
		}
		m[uint32(id)] = true
	}
	return m, nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressLine returns a callback that redraws one status line.
func progressLine(w io.Writer) func(extract.Summary) {
	start := time.Now()
	return func(s extract.Summary) {
		secs := time.Since(start).Seconds()
		fmt.Fprintf(w, "\r\033[K%d jobs, %d files, %.1f MiB, %.0f MiB/s", s.Jobs, s.Files,
			float64(s.Bytes)/(1<<20), float64(s.Bytes)/(1<<20)/max(secs, 0.001))
	}
}

// startProfile starts a CPU profile into path ("" for none) and returns
// what stops it.
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// configFlags starts the flag set of a command that reads the
// configuration file (-c).
func configFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs, fs.String("c", defaultConfig, "configuration `file`")
}

// parseNoArgs parses the flags of a command that takes no arguments.
func parseNoArgs(fs *flag.FlagSet, usage string, args []string) error {
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// writeHeapProfile writes the heap profile of what is still in use to
// path ("" for none).
func writeHeapProfile(path string) {
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "replicad:", err)
		return
	}
	defer f.Close()
	runtime.GC()
	pprof.Lookup("heap").WriteTo(f, 0)
}
