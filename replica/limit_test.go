package replica_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/openbrc/brc/bacularec"
	"github.com/openbrc/brc/replica"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64 // 0: an error is expected
	}{
		{"1", 1},
		{"1000", 1000},
		{"500K", 500 << 10},
		{"500k", 500 << 10},
		{"1M", 1 << 20},
		{"1m", 1 << 20},
		{"2G", 2 << 30},
		{"2g", 2 << 30},
		{"1.5M", 3 << 19},
		{" 64K ", 64 << 10},
		{"10 M", 10 << 20},
		{"0.5", 1}, // rounds to one byte per second
		{"", 0},
		{"K", 0},
		{"0", 0},
		{"0K", 0},
		{"0.4", 0},
		{"-1", 0},
		{"-5M", 0},
		{"1.2.3", 0},
		{"fast", 0},
		{"1T", 0},
		{"1KB", 0},
		{"1e6", 0},
		{"inf", 0},
		{"0x10", 0},
		{"99999999999G", 0},
	} {
		got, err := replica.ParseRate(tc.in)
		if tc.want == 0 {
			if err == nil {
				t.Errorf("ParseRate(%q) = %d, want an error", tc.in, got)
				continue
			}
			if !errors.Is(err, replica.ErrBadRate) {
				t.Errorf("ParseRate(%q) error %v does not wrap ErrBadRate", tc.in, err)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(`"`+tc.in+`"`)) {
				t.Errorf("ParseRate(%q) error %q does not name the value", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

// pieces is a Content over fixed pieces.
type pieces struct {
	offs []int64
	data [][]byte
	i    int
}

func (p *pieces) Next() (int64, []byte, error) {
	if p.i == len(p.data) {
		return 0, nil, io.EOF
	}
	p.i++
	return p.offs[p.i-1], p.data[p.i-1], nil
}

// content splits data into pieces of size n.
func content(data []byte, n int) *pieces {
	c := &pieces{}
	for off := 0; off < len(data); off += n {
		c.offs = append(c.offs, int64(off))
		c.data = append(c.data, data[off:min(off+n, len(data))])
	}
	return c
}

func regFile(job *bacularec.Job, path string, size int64) *bacularec.File {
	return &bacularec.File{Job: job, Type: bacularec.TypeReg, Path: path,
		Stat: bacularec.Stat{Mode: 0o100644, Size: size, Mtime: 1_700_000_000, Atime: 1_700_000_000}}
}

// TestLimitRate measures the throughput of a limited Memory target. The
// limiter starts with a full burst, which passes at once: the time to
// expect is that of the rest.
func TestLimitRate(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 5 s")
	}
	const rate = 1 << 20
	const burst = rate / 10 // Limit's burst at this rate
	mem := replica.NewMemory()
	tg := replica.Limit(mem, rate)
	job := &bacularec.Job{JobID: 1, Level: 'F'}
	ctx := context.Background()
	if err := tg.Begin(ctx, job); err != nil {
		t.Fatal(err)
	}
	// 5 MiB past the burst, in pieces larger than the burst (split by
	// the limiter) and smaller ones.
	size := 5<<20 + burst
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	half := size / 2
	start := time.Now()
	if err := tg.Put(ctx, regFile(job, "/big", int64(half)), content(data[:half], 300<<10)); err != nil {
		t.Fatal(err)
	}
	if err := tg.Put(ctx, regFile(job, "/small", int64(size-half)), content(data[half:], 4<<10)); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if err := tg.End(ctx, job); err != nil {
		t.Fatal(err)
	}
	files := mem.Files()
	if !bytes.Equal(files["/big"].Data, data[:half]) || !bytes.Equal(files["/small"].Data, data[half:]) {
		t.Fatal("content changed on its way through the limiter")
	}
	want := time.Duration(float64(size-burst) / rate * float64(time.Second))
	measured := float64(size-burst) / elapsed.Seconds()
	t.Logf("%d bytes in %v: %.0f B/s past the burst (limit %d B/s, %+.2f%%)",
		size, elapsed.Round(time.Millisecond), measured, rate, (measured/rate-1)*100)
	if d := elapsed - want; d < -want/10 || d > want/10 {
		t.Errorf("took %v, want %v ± 10%%", elapsed, want)
	}
}

func TestLimitUnwrap(t *testing.T) {
	mem := replica.NewMemory()
	if got := replica.Limit(mem, 0); got != replica.Target(mem) {
		t.Errorf("Limit(t, 0) = %T, want t itself", got)
	}
	inner := replica.Limit(mem, 1<<20)
	outer := replica.Limit(inner, 1<<10)
	u, ok := outer.(replica.Unwrapper)
	if !ok {
		t.Fatalf("%T does not implement Unwrapper", outer)
	}
	if u.Unwrap() != inner {
		t.Error("Unwrap does not return the wrapped target")
	}
	if replica.Unwrap(outer) != replica.Target(mem) {
		t.Error("replica.Unwrap does not reach the Memory")
	}

	// Optional interfaces: exactly those of the wrapped target.
	if _, ok := outer.(replica.StatsReporter); !ok {
		t.Error("StatsReporter of a Memory not forwarded")
	}
	if _, ok := outer.(io.Closer); ok {
		t.Error("a limited Memory claims io.Closer, which Memory lacks")
	}
	mir := replica.Limit(replica.NewMirror(t.TempDir(), replica.MirrorOptions{}), 1<<20)
	if _, ok := mir.(replica.StatsReporter); !ok {
		t.Error("StatsReporter of a Mirror not forwarded")
	}
	if c, ok := mir.(io.Closer); !ok {
		t.Error("io.Closer of a Mirror not forwarded")
	} else if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, ok := replica.Limit(bare{}, 1).(replica.StatsReporter); ok {
		t.Error("a limited target without Stats claims StatsReporter")
	}

	// Stats are the wrapped target's.
	job := &bacularec.Job{JobID: 1}
	ctx := context.Background()
	outer.Begin(ctx, job)
	if err := outer.Put(ctx, regFile(job, "/f", 3), content([]byte("abc"), 3)); err != nil {
		t.Fatal(err)
	}
	outer.End(ctx, job)
	if s := outer.(replica.StatsReporter).Stats(); s != mem.Stats() || s.Files != 1 || s.Bytes != 3 {
		t.Errorf("Stats = %+v, Memory has %+v", s, mem.Stats())
	}
}

// bare is a Target with no optional interface.
type bare struct{}

func (bare) Begin(context.Context, *bacularec.Job) error { return nil }
func (bare) End(context.Context, *bacularec.Job) error   { return nil }
func (bare) Put(_ context.Context, _ *bacularec.File, c replica.Content) error {
	for {
		if _, _, err := c.Next(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

func TestLimitCancel(t *testing.T) {
	// At 1 KiB/s, 1 MiB takes 17 minutes past the 4 KiB burst.
	data := make([]byte, 1<<20)
	job := &bacularec.Job{JobID: 1}

	t.Run("cancel", func(t *testing.T) {
		mem := replica.NewMemory()
		tg := replica.Limit(mem, 1<<10)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		err := tg.Put(ctx, regFile(job, "/f", int64(len(data))), content(data, 32<<10))
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Put returned %v after the cancel", d)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Put = %v, want context.Canceled", err)
		}
		if !replica.IsTargetFailure(err) {
			t.Errorf("Put = %v: a cancelled job is not a file error", err)
		}
		if _, ok := mem.Files()["/f"]; ok {
			t.Error("the file was put despite the cancel")
		}
	})

	t.Run("deadline", func(t *testing.T) {
		// WaitN gives up at once when the wait would outlast the
		// deadline; that must still read as the deadline.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		tg := replica.Limit(replica.NewMirror(t.TempDir(), replica.MirrorOptions{}), 1<<10)
		if err := tg.Begin(ctx, job); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err := tg.Put(ctx, regFile(job, "/f", int64(len(data))), content(data, 32<<10))
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Put returned after %v", d)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Put = %v, want context.DeadlineExceeded", err)
		}
		if !replica.IsTargetFailure(err) {
			t.Errorf("Put = %v: a job past its deadline is not a file error", err)
		}
		tg.End(context.Background(), job)
	})
}
