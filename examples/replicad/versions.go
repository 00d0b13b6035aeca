package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/openbrc/brc/internal/config"
	"github.com/openbrc/brc/internal/extract"
	"github.com/openbrc/brc/replica"
)

// versionFlags are the flags of the versions and restore-version commands.
type versionFlags struct {
	conf   *string
	target *string
	set    map[string]bool
}

func registerVersionFlags(fs *flag.FlagSet) *versionFlags {
	return &versionFlags{
		conf:   fs.String("c", defaultConfig, "configuration `file` (targets, strip_prefix)"),
		target: fs.String("target", "", "only the target at `ROOT`; without -c, no configuration is read"),
	}
}

// parseInterleaved parses flags placed before, between or after the
// positional arguments, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// roots returns the target roots to work on and the strip_prefix that
// maps backed-up paths onto them.
func (vf *versionFlags) roots(fs *flag.FlagSet) ([]string, string, error) {
	vf.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { vf.set[f.Name] = true })
	if *vf.target != "" && !vf.set["c"] {
		return []string{*vf.target}, "", nil
	}
	cfg, err := config.Load(*vf.conf)
	if err != nil {
		return nil, "", err
	}
	if *vf.target != "" {
		return []string{*vf.target}, cfg.StripPrefix, nil
	}
	var roots []string
	for _, t := range cfg.Targets {
		roots = append(roots, t.Path)
	}
	return roots, cfg.StripPrefix, nil
}

// cmdVersions lists the previous versions of a file kept on each target
// (mode = retention), newest first.
func cmdVersions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("versions", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vf := registerVersionFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: replicad versions [-c FILE] [-target ROOT] PATH")
		fmt.Fprintln(fs.Output(), "\nLists the previous versions of the backed-up file PATH kept on the targets (mode = retention), newest first.")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{errors.New("want one PATH")}
	}
	roots, prefix, err := vf.roots(fs)
	if err != nil {
		return err
	}
	path := extract.StripPrefix(pos[0], prefix)
	var errs []error
	for _, root := range roots {
		if err := ctx.Err(); err != nil {
			return err
		}
		vs, err := replica.ListVersions(root, path)
		if err != nil {
			errs = append(errs, fmt.Errorf("target %s: %w", root, err))
			continue
		}
		if len(vs) == 0 {
			fmt.Fprintf(stdout, "target %s: %s: no previous versions\n", root, pos[0])
			continue
		}
		fmt.Fprintf(stdout, "target %s: %s: %d previous versions\n", root, pos[0], len(vs))
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  VERSION\tTIME (UTC)\tJOBID\tSIZE\tMODE\t")
		for _, v := range vs {
			job := fmt.Sprint(v.JobID)
			if v.JobID == 0 {
				job = "?"
			}
			size := fmt.Sprint(v.Size)
			if v.Link != "" {
				size += " -> " + v.Link
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t\n", v.Name, v.Time.UTC().Format(time.DateTime), job, size, v.Mode)
		}
		tw.Flush()
	}
	return errors.Join(errs...)
}

// cmdRestoreVersion brings a previous version of a file back on a target,
// or copies it elsewhere.
func cmdRestoreVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore-version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vf := registerVersionFlags(fs)
	out := fs.String("o", "", "copy the version to `DST` (a file, or a directory to put it in) instead of making it the current file on the target")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: replicad restore-version [-c FILE] [-target ROOT] PATH VERSION [-o DST]")
		fmt.Fprintln(fs.Output(), "\nMakes VERSION (see \"replicad versions PATH\") the current file at PATH on the target again, atomically;\nthe file it replaces is kept as a version. With -o, copies it to DST instead.")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError{errors.New("want PATH and VERSION")}
	}
	roots, prefix, err := vf.roots(fs)
	if err != nil {
		return err
	}
	if len(roots) != 1 {
		return usageError{fmt.Errorf("%d targets configured: choose one with -target ROOT", len(roots))}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	root, path, name := roots[0], extract.StripPrefix(pos[0], prefix), pos[1]
	if err := replica.RestoreVersion(root, path, name, *out); err != nil {
		return fmt.Errorf("target %s: %w", root, err)
	}
	if *out != "" {
		fmt.Fprintf(stdout, "target %s: %s: version %s copied to %s\n", root, pos[0], name, *out)
	} else {
		fmt.Fprintf(stdout, "target %s: %s: version %s restored\n", root, pos[0], name)
	}
	return nil
}
