package report

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// WriteMarkdown writes r as a GitHub-flavoured Markdown page for an
// auditor: a title with the generation time, the SLA verdicts, a summary
// table per target with totals, per-target status and jobs, the files over
// the RPO (worst first), the targets over the RTO, and the failed or
// lagging targets with their last error. Durations read as "4h 0m 0s",
// sizes in IEC units; the JSON has the exact numbers.
//
// Text from the catalog (names, paths, errors) is escaped so that it can
// neither break a table nor turn into links, emphasis or HTML: paths with
// control characters or invalid UTF-8 are shown Go-quoted ("a\nb"), and
// line breaks in error texts become <br>. The page is built in memory and
// written with one Write; a nil r is ErrNilReport.
func WriteMarkdown(w io.Writer, r *Report) error {
	if r == nil {
		return ErrNilReport
	}
	var b bytes.Buffer
	m := mdWriter{b: &b, now: r.GeneratedAt}
	m.page(r)
	_, err := w.Write(b.Bytes())
	return err
}

type mdWriter struct {
	b   *bytes.Buffer
	now time.Time
}

func (m *mdWriter) f(format string, args ...any) { fmt.Fprintf(m.b, format, args...) }

func (m *mdWriter) page(r *Report) {
	gen := r.GeneratedAt.UTC().Format(time.RFC3339)
	m.f("# RPO/RTO compliance report, %s\n\n", gen)
	m.f("Generated %s from %d %s (schema `%s`).\n", gen, r.Totals.Targets, plural(int64(r.Totals.Targets), "target", "targets"), mdText(r.Schema))
	m.f("SLA: RPO %s (%d s), RTO %s (%d s); every RTO estimate includes %s (%d s) to mount and check.\n\n",
		dur(r.SLA.RPOSecs), r.SLA.RPOSecs, dur(r.SLA.RTOSecs), r.SLA.RTOSecs,
		dur(r.SLA.RTOOverheadSecs), r.SLA.RTOOverheadSecs)

	m.f("## SLA verdicts\n\n")
	m.f("| Check | Verdict |\n| --- | --- |\n")
	m.f("| **Overall** | **%s** |\n", verdict(r.Verdict))
	m.f("| RPO: every file replicated within %s | %s |\n", dur(r.SLA.RPOSecs), verdict(r.RPOVerdict))
	m.f("| RTO: every target restorable within %s | %s |\n\n", dur(r.SLA.RTOSecs), verdict(r.RTOVerdict))
	m.f("Targets: %d pass, %d fail, %d unknown. ", r.Totals.TargetsPass, r.Totals.TargetsFail, r.Totals.TargetsUnknown)
	m.f("An unknown verdict is not a pass: the report could not show that the target meets its SLA (no measured bandwidth, or no targets at all).\n\n")

	m.summary(r)
	m.status(r)
	m.jobs(r)
	m.rpoBreaches(r)
	m.rtoBreaches(r)
	m.attention(r)
}

func (m *mdWriter) summary(r *Report) {
	m.f("## Summary\n\n")
	if len(r.Targets) == 0 {
		m.f("No targets.\n\n")
		return
	}
	m.f("| Target | Files | Bytes | RPO max | RPO p95 | RPO median | RTO estimate | RPO | RTO | Verdict |\n")
	m.f("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |\n")
	for _, t := range r.Targets {
		mx, p95, med := "n/a", "n/a", "n/a"
		if t.RPO != nil {
			mx, p95, med = dur(t.RPO.MaxSecs), dur(t.RPO.P95Secs), dur(t.RPO.MedianSecs)
		}
		m.f("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			mdText(t.Name), t.Files, size(t.Bytes), mx, p95, med, durPtr(t.RTOEstimateSecs, "unknown"),
			verdict(t.RPOVerdict), verdict(t.RTOVerdict), verdict(t.Verdict))
	}
	m.f("| **All targets** | %d | %s | %s | | | | %s | %s | %s |\n\n",
		r.Totals.Files, size(r.Totals.Bytes), durPtr(r.Totals.RPOMaxSecs, "n/a"),
		verdict(r.RPOVerdict), verdict(r.RTOVerdict), verdict(r.Verdict))
	m.f("RPO is the age of each file's copy: report time minus its last successful replication. ")
	m.f("Quantiles are exact, nearest-rank, over the files with a replication time. ")
	m.f("RTO estimate: bytes / measured destination bandwidth, rounded up, plus the overhead.\n\n")
}

func (m *mdWriter) status(r *Report) {
	m.f("## Target status\n\n")
	if len(r.Targets) == 0 {
		m.f("No targets.\n\n")
		return
	}
	m.f("| Target | Root | State | Bandwidth | Last success | Pending jobs | Files over RPO | Never replicated | Clock skew |\n")
	m.f("| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: |\n")
	for _, t := range r.Targets {
		bw := "unknown"
		if t.BandwidthBps > 0 {
			bw = size(t.BandwidthBps) + "/s"
		}
		m.f("| %s | %s | %s | %s | %s | %d | %d | %d | %d |\n",
			mdText(t.Name), mdPath(t.Root), state(t.State), bw, m.when(t.LastSuccess),
			t.PendingJobs, t.RPOBreaches, t.NeverReplicated, t.FutureFiles)
	}
	m.f("\nClock skew counts files replicated after the report time by the catalog's clock; their age is taken as 0.\n\n")
}

func (m *mdWriter) jobs(r *Report) {
	m.f("## Jobs\n\n")
	if len(r.Targets) == 0 {
		m.f("No targets.\n\n")
		return
	}
	m.f("| Target | Last JobId | Job | Level | Status | Started | Ended | Files | Bytes | Skipped | Errors | All jobs |\n")
	m.f("| --- | ---: | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |\n")
	for _, t := range r.Targets {
		j := t.LastJob
		if j == nil {
			m.f("| %s | | no job | | | | | | | | | %s |\n", mdText(t.Name), jobTotals(t.Jobs))
			continue
		}
		end := "running"
		if j.End != nil {
			end = m.when(j.End)
		}
		m.f("| %s | %d | %s | %s | %s | %s | %s | %d | %s | %d | %d | %s |\n",
			mdText(t.Name), j.JobID, mdText(j.Name), mdText(j.Level), mdText(j.Status),
			m.when(j.Start), end, j.Files, size(j.Bytes), j.Skipped, j.Errors, jobTotals(t.Jobs))
	}
	m.f("\nAll targets: %s.\n\n", jobTotals(r.Totals.Jobs))
}

func jobTotals(t JobTotals) string {
	s := fmt.Sprintf("%d %s, %d %s, %s, %d skipped, %d %s",
		t.Jobs, plural(t.Jobs, "job", "jobs"), t.Files, plural(t.Files, "file", "files"),
		size(t.Bytes), t.Skipped, t.Errors, plural(t.Errors, "error", "errors"))
	if len(t.ByStatus) == 0 {
		return s
	}
	keys := make([]string, 0, len(t.ByStatus))
	for k := range t.ByStatus {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		name := mdText(k)
		if k == "" {
			name = "(none)"
		}
		parts[i] = fmt.Sprintf("%s: %d", name, t.ByStatus[k])
	}
	return s + "; status " + strings.Join(parts, ", ")
}

func (m *mdWriter) rpoBreaches(r *Report) {
	m.f("## RPO breaches\n\n")
	b := r.RPOBreaches
	if b.Files == 0 {
		m.f("No file is older than the RPO of %s.\n\n", dur(r.SLA.RPOSecs))
		return
	}
	m.f("%d %s older than the RPO of %s", b.Files, plural(b.Files, "file is", "files are"), dur(r.SLA.RPOSecs))
	if r.Totals.NeverReplicated > 0 {
		m.f(" (%d never replicated)", r.Totals.NeverReplicated)
	}
	switch {
	case len(b.Worst) == 0:
		m.f("; none listed (max_listed is %d).\n\n", r.SLA.MaxListed)
		return
	case int64(len(b.Worst)) < b.Files:
		m.f("; the worst %d are listed, never replicated first, then oldest first.\n\n", len(b.Worst))
	default:
		m.f(", never replicated first, then oldest first.\n\n")
	}
	m.f("| # | Target | Path | Age | Replicated | JobId | Size |\n")
	m.f("| ---: | --- | --- | ---: | --- | ---: | ---: |\n")
	for i, f := range b.Worst {
		m.f("| %d | %s | %s | %s | %s | %d | %s |\n", i+1, mdText(f.Target), mdPath(f.Path),
			durPtr(f.AgeSecs, "never replicated"), m.when(f.Replicated), f.JobID, size(f.Size))
	}
	m.f("\n")
}

func (m *mdWriter) rtoBreaches(r *Report) {
	m.f("## RTO breaches\n\n")
	var unknown []string
	for _, t := range r.Targets {
		if t.RTOVerdict == Unknown {
			unknown = append(unknown, mdText(t.Name))
		}
	}
	if len(r.RTOBreaches) == 0 {
		m.f("No target's RTO estimate exceeds the RTO of %s.\n\n", dur(r.SLA.RTOSecs))
	} else {
		m.f("%d %s over the RTO of %s:\n\n", len(r.RTOBreaches),
			plural(int64(len(r.RTOBreaches)), "target is", "targets are"), dur(r.SLA.RTOSecs))
		m.f("| Target | Bytes | Bandwidth | RTO estimate |\n| --- | ---: | ---: | ---: |\n")
		for _, name := range r.RTOBreaches {
			for _, t := range r.Targets {
				if t.Name == name {
					m.f("| %s | %s | %s/s | %s |\n", mdText(t.Name), size(t.Bytes), size(t.BandwidthBps),
						durPtr(t.RTOEstimateSecs, "unknown"))
				}
			}
		}
		m.f("\n")
	}
	if len(unknown) > 0 {
		m.f("RTO unknown, no measured bandwidth: %s.\n\n", strings.Join(unknown, ", "))
	}
}

func (m *mdWriter) attention(r *Report) {
	m.f("## Failed or lagging targets\n\n")
	if len(r.Attention) == 0 {
		m.f("No target is failed, lagging or in another state than ok.\n")
		return
	}
	m.f("| Target | State | Last success | Pending jobs | Last error |\n| --- | --- | --- | ---: | --- |\n")
	for _, a := range r.Attention {
		e := mdText(a.LastError)
		if a.LastError == "" {
			e = "(none recorded)"
		}
		m.f("| %s | %s | %s | %d | %s |\n", mdText(a.Name), state(a.State), m.when(a.LastSuccess), a.PendingJobs, e)
	}
}

// when shows a time with its age at report time, which is what an auditor
// compares with the SLA.
func (m *mdWriter) when(t *time.Time) string {
	if t == nil {
		return "never"
	}
	s := t.UTC().Format(time.RFC3339)
	if d := m.now.Sub(*t); d >= 0 {
		return s + " (" + dur(int64(d/time.Second)) + " ago)"
	}
	return s + " (in the future)"
}

func verdict(v Verdict) string {
	switch v {
	case Pass, Fail, Unknown:
		return strings.ToUpper(string(v))
	}
	return mdText(string(v))
}

func state(s State) string {
	if s == "" {
		return "(none)"
	}
	return mdText(string(s))
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// dur shows whole seconds as "1d 2h 3m 4s", from the largest unit present
// down to seconds, so that values in a column compare at a glance.
func dur(secs int64) string {
	if secs < 0 {
		return "-" + dur(-secs)
	}
	d, h, mi, s := secs/86400, secs/3600%24, secs/60%60, secs%60
	switch {
	case d > 0:
		return fmt.Sprintf("%dd %dh %dm %ds", d, h, mi, s)
	case h > 0:
		return fmt.Sprintf("%dh %dm %ds", h, mi, s)
	case mi > 0:
		return fmt.Sprintf("%dm %ds", mi, s)
	}
	return fmt.Sprintf("%ds", s)
}

func durPtr(secs *int64, none string) string {
	if secs == nil {
		return none
	}
	return dur(*secs)
}

// size shows bytes in IEC units with one decimal.
func size(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		v /= 1024
		if v < 1024 {
			return strconv.FormatFloat(v, 'f', 1, 64) + " " + u
		}
	}
	return strconv.FormatFloat(v/1024, 'f', 1, 64) + " EiB"
}

// mdPath shows a path in a table cell. A path with control characters or
// invalid UTF-8 is shown Go-quoted, escapes and all, since a newline
// cannot stand in a table row and any stand-in would be ambiguous.
func mdPath(p string) string {
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return mdText(strconv.Quote(p))
		}
	}
	return mdText(p)
}

// mdText escapes text for a GFM table cell. Backslash escapes are used
// rather than code spans because a code span cannot hold "\|": the table
// parser would still split the row at that pipe. Escaped are the backslash
// itself, "|" (cell separator), and what starts inline markup: * _ ` ~
// (emphasis, code, strikethrough), [ ] (links and images), < (HTML,
// autolinks) and & (entities). Block syntax needs no escape: a cell holds
// inline content only. An underscore between two letters or digits cannot
// start or end emphasis and is left alone, so that the common
// "my_file_name" reads as written. Line breaks become <br>; other control
// characters become U+FFFD.
func mdText(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\r' && strings.HasPrefix(s[i:], "\r\n"):
			b.WriteString("<br>")
			n = 2
		case r == '\n' || r == '\r':
			b.WriteString("<br>")
		case r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f:
			b.WriteRune(utf8.RuneError)
		case r == '_' && i > 0 && i+1 < len(s) && isAlnum(s[i-1]) && isAlnum(s[i+1]):
			b.WriteByte('_')
		case strings.ContainsRune("\\|*_`~[]<&", r):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			// Invalid UTF-8 is written as U+FFFD by WriteRune: a Markdown page
			// is UTF-8 text.
			b.WriteRune(r)
		}
		i += n
	}
	return b.String()
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
