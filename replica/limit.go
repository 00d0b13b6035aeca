package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"golang.org/x/time/rate"

	"github.com/openbrc/brc/bacularec"
)

// ErrBadRate is wrapped by the errors of ParseRate.
var ErrBadRate = errors.New("replica: invalid bandwidth limit")

// ParseRate parses a bandwidth limit of the configuration: a number of
// bytes per second, optionally followed by a K, M or G suffix (upper or
// lower case) meaning 1024, 1024² and 1024³ bytes per second, the way the
// original product (and Bacula's own "MaximumBandwidth" sizes) count. A
// decimal fraction is allowed ("1.5M"); surrounding spaces are ignored.
// Zero, negative numbers and anything else are refused with an error
// wrapping ErrBadRate that names the value.
func ParseRate(s string) (int64, error) {
	bad := func(why string) (int64, error) {
		return 0, fmt.Errorf("%w %q: %s", ErrBadRate, s, why)
	}
	num := strings.TrimSpace(s)
	if num == "" {
		return bad("empty")
	}
	mult := 1.0
	switch num[len(num)-1] {
	case 'k', 'K':
		mult = 1 << 10
	case 'm', 'M':
		mult = 1 << 20
	case 'g', 'G':
		mult = 1 << 30
	}
	if mult != 1 {
		num = strings.TrimSpace(num[:len(num)-1])
	}
	if strings.HasPrefix(num, "-") {
		return bad("must be positive")
	}
	// Digits with at most one decimal point, parsed by hand: ParseFloat
	// would also take "inf", "1e9", "0x1p3" and "_", which no one means
	// in a bandwidth limit.
	var whole, frac float64
	scale := 1.0
	digits, dot := 0, false
	for _, c := range []byte(num) {
		switch {
		case c >= '0' && c <= '9':
			digits++
			if dot {
				scale /= 10
				frac += float64(c-'0') * scale
			} else {
				whole = whole*10 + float64(c-'0')
			}
		case c == '.' && !dot:
			dot = true
		default:
			return bad("want a number of bytes per second with an optional K, M or G suffix")
		}
	}
	if digits == 0 {
		return bad("want a number of bytes per second with an optional K, M or G suffix")
	}
	v := math.Round((whole + frac) * mult)
	switch {
	case v >= math.MaxInt64:
		return bad("too large")
	case v < 1:
		return bad("must be at least 1 byte per second")
	}
	return int64(v), nil
}

// minBurst is the smallest burst of a limit. Pieces of content come in
// sizes up to 64 KiB; a smaller burst splits them, which costs little,
// while a large one would let a slow link take a big first gulp.
const minBurst = 4 << 10

// Limit returns t with the content bytes of its regular files throttled
// to bytesPerSec on average, for a target behind a slow or shared link.
// Only data counts: Begin, End, and records without content pass at once.
// The limiter allows bursts of a tenth of a second's worth (at least
// 4 KiB), which keeps the average within a few percent over seconds while
// leaving the pieces the engine sends mostly whole.
//
// The returned Target implements Unwrapper, and StatsReporter and
// io.Closer when t does. A bytesPerSec of zero or less means no limit: t
// itself is returned.
//
// Waiting stops when the context of Put is done: Put then returns an
// error wrapping the context's error, which is not a FileError, so the
// engine stops the job for this target and replays it later.
func Limit(t Target, bytesPerSec int64) Target {
	if bytesPerSec <= 0 {
		return t
	}
	burst := max(int64(minBurst), bytesPerSec/10)
	burst = min(burst, math.MaxInt32) // pieces are far smaller anyway
	l := &limited{t: t, lim: rate.NewLimiter(rate.Limit(bytesPerSec), int(burst)), burst: int(burst)}
	// The engine discovers optional interfaces by type assertion, so the
	// wrapper must have exactly the ones the target has.
	sr, stats := t.(StatsReporter)
	cl, closer := t.(io.Closer)
	switch {
	case stats && closer:
		return &limitedStatsCloser{limited: l, sr: sr, cl: cl}
	case stats:
		return &limitedStats{limited: l, sr: sr}
	case closer:
		return &limitedCloser{limited: l, cl: cl}
	}
	return l
}

// limited is the Target returned by Limit.
type limited struct {
	t     Target
	lim   *rate.Limiter
	burst int
}

type limitedStats struct {
	*limited
	sr StatsReporter
}

type limitedCloser struct {
	*limited
	cl io.Closer
}

type limitedStatsCloser struct {
	*limited
	sr StatsReporter
	cl io.Closer
}

// Stats implements StatsReporter: the wrapped target's counts.
func (l *limitedStats) Stats() Stats { return l.sr.Stats() }

// Close implements io.Closer: it closes the wrapped target.
func (l *limitedCloser) Close() error { return l.cl.Close() }

// Stats implements StatsReporter: the wrapped target's counts.
func (l *limitedStatsCloser) Stats() Stats { return l.sr.Stats() }

// Close implements io.Closer: it closes the wrapped target.
func (l *limitedStatsCloser) Close() error { return l.cl.Close() }

// Unwrap implements Unwrapper.
func (l *limited) Unwrap() Target { return l.t }

// Begin implements Target.
func (l *limited) Begin(ctx context.Context, job *bacularec.Job) error { return l.t.Begin(ctx, job) }

// End implements Target.
func (l *limited) End(ctx context.Context, job *bacularec.Job) error { return l.t.End(ctx, job) }

// Put implements Target: content reaches the wrapped target at the rate.
func (l *limited) Put(ctx context.Context, f *bacularec.File, c Content) error {
	if c == nil {
		return l.t.Put(ctx, f, c)
	}
	lc := &limitedContent{ctx: ctx, c: c, l: l}
	err := l.t.Put(ctx, f, lc)
	if lc.err != nil && !(errors.Is(err, lc.err) && IsTargetFailure(err)) {
		// The wrapped target may report the failed content as a
		// FileError (or not at all); a cancelled wait concerns the whole
		// job, not the file, so the error must not be a FileError.
		return errors.Join(lc.err, err)
	}
	return err
}

// limitedContent throttles the pieces of a Content, splitting those
// larger than the burst (a wait for more than the burst never succeeds).
type limitedContent struct {
	ctx  context.Context
	c    Content
	l    *limited
	off  int64  // offset of rest
	rest []byte // what is left of the current piece
	err  error  // the wait failed
}

func (lc *limitedContent) Next() (int64, []byte, error) {
	if lc.err != nil {
		return 0, nil, lc.err
	}
	if len(lc.rest) == 0 {
		off, p, err := lc.c.Next()
		if err != nil || len(p) == 0 {
			return off, p, err
		}
		lc.off, lc.rest = off, p
	}
	n := min(len(lc.rest), lc.l.burst)
	if err := lc.l.lim.WaitN(lc.ctx, n); err != nil {
		// WaitN fails at once, without a context error, when the wait
		// would outlast the context's deadline: report that as the
		// deadline it is.
		if cerr := lc.ctx.Err(); cerr != nil {
			err = cerr
		} else if _, ok := lc.ctx.Deadline(); ok {
			err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		lc.err = fmt.Errorf("replica: bandwidth limit: %w", err)
		return 0, nil, lc.err
	}
	off, p := lc.off, lc.rest[:n]
	lc.off += int64(n)
	lc.rest = lc.rest[n:]
	return off, p, nil
}
