package source

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func newFollow(t *testing.T, dir string, opt FollowOptions) (*Follow, string) {
	t.Helper()
	state := filepath.Join(t.TempDir(), "state.json")
	if opt.Idle == 0 {
		opt.Idle = 250 * time.Millisecond
	}
	opt.Logger = testLogger(t)
	f := NewFollow(dir, state, opt)
	t.Cleanup(func() { f.Close() })
	return f, state
}

// writeVolume writes data progressively to dir/name in the background.
func writeVolume(t *testing.T, wg *sync.WaitGroup, path string, data []byte) {
	t.Helper()
	wg.Add(1)
	go func() {
		defer wg.Done()
		fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			t.Error(err)
			return
		}
		defer fh.Close()
		if err := writeSlowly(fh, data, pausePoints(t, data)); err != nil {
			t.Error(err)
		}
	}()
}

func pass(t *testing.T, f Stream, ctx context.Context) ([]item, func(context.Context) []item) {
	t.Helper()
	open, err := f.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	files, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again := func(ctx context.Context) []item {
		files, err := open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return collect(t, files)
	}
	return collect(t, files), again
}

func TestFollowGrowingVolume(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		poll    bool
	}{
		{"bacula-9.6.7-plain-md5.vol", false},
		{"bacula-9.6.7-plain-md5.vol", true},
		{"bacula-9.6.7-interleave-2jobs.vol", false},
		{"bacula-9.6.7-accurate-2-incr.vol", true},
	} {
		name := tc.fixture
		if tc.poll {
			name += "/poll"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			f, state := newFollow(t, dir, FollowOptions{NoInotify: tc.poll, PollInterval: 20 * time.Millisecond})
			var wg sync.WaitGroup
			writeVolume(t, &wg, filepath.Join(dir, "Vol-0001"), fixture(t, tc.fixture))
			ctx := ctxFor(t, 10*time.Second)
			got, again := pass(t, f, ctx)
			wg.Wait()
			want := readWhole(t, tc.fixture)
			sameItems(t, "live pass", got, want)
			sameItems(t, "replayed pass", again(ctx), want)
			if err := f.Commit(); err != nil {
				t.Fatal(err)
			}
			var st followState
			b, _ := os.ReadFile(state)
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			size := int64(len(fixture(t, tc.fixture)))
			if len(st.Volumes) != 1 || st.Volumes[0].Resume != size || st.Volumes[0].Read != size {
				t.Fatalf("state %+v, want one volume read up to %d", st, size)
			}
			// Nothing new: Next waits.
			short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
			defer cancel()
			if _, err := f.Next(short); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Next with nothing new: %v", err)
			}
			// The pass is still the last one: its Source still replays.
			sameItems(t, "replayed after a Next that found nothing", again(ctx), want)
		})
	}
}

func TestFollowStalePass(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "v1"), fixture(t, "bacula-9.6.7-accurate-1-full.vol"), 0o600)
	f, _ := newFollow(t, dir, FollowOptions{Idle: 50 * time.Millisecond})
	ctx := ctxFor(t, 5*time.Second)
	open, err := f.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := open(ctx)
	collect(t, files)
	os.WriteFile(filepath.Join(dir, "v2"), fixture(t, "bacula-9.6.7-accurate-2-incr.vol"), 0o600)
	if _, err := f.Next(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := open(ctx); !errors.Is(err, ErrStalePass) {
		t.Fatalf("old Source after Next: %v", err)
	}
}

// A job spanning two volumes: the second appears once the first is full.
func TestFollowSpan(t *testing.T) {
	dir := t.TempDir()
	f, _ := newFollow(t, dir, FollowOptions{})
	one, two := fixture(t, "bacula-9.6.7-span.1.vol"), fixture(t, "bacula-9.6.7-span.2.vol")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Name them so that name order is the wrong order: Follow must
		// go by the labels.
		p1, p2 := filepath.Join(dir, "zz-first"), filepath.Join(dir, "aa-second")
		for _, v := range []struct {
			path string
			data []byte
		}{{p1, one}, {p2, two}} {
			fh, err := os.Create(v.path)
			if err != nil {
				t.Error(err)
				return
			}
			if err := writeSlowly(fh, v.data, pausePoints(t, v.data)); err != nil {
				t.Error(err)
			}
			fh.Close()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	ctx := ctxFor(t, 10*time.Second)
	got, again := pass(t, f, ctx)
	wg.Wait()
	want := readWhole(t, "bacula-9.6.7-span.1.vol", "bacula-9.6.7-span.2.vol")
	sameItems(t, "span", got, want)
	sameItems(t, "span replayed", again(ctx), want)
	if j := jobs(got); len(j) != 1 || !contains(j[0], "ended=true status=T") {
		t.Fatalf("jobs %v", j)
	}
}

func contains(s, sub string) bool { return len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0) }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// Both volumes of the span already there, and a non-volume file.
func TestFollowExistingVolumes(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "b"), fixture(t, "bacula-9.6.7-span.2.vol"), 0o600)
	os.WriteFile(filepath.Join(dir, "c"), fixture(t, "bacula-9.6.7-span.1.vol"), 0o600)
	os.WriteFile(filepath.Join(dir, "README"), []byte("not a volume, but long enough to look at it"), 0o600)
	f, _ := newFollow(t, dir, FollowOptions{Idle: 50 * time.Millisecond})
	got, _ := pass(t, f, ctxFor(t, 5*time.Second))
	sameItems(t, "span", got, readWhole(t, "bacula-9.6.7-span.1.vol", "bacula-9.6.7-span.2.vol"))
}

// A volume truncated, then relabelled in place.
func TestFollowRecycled(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Vol-0001")
	os.WriteFile(path, fixture(t, "bacula-9.6.7-plain-md5.vol"), 0o600)
	recycled := make(chan string, 4)
	f, _ := newFollow(t, dir, FollowOptions{Idle: 50 * time.Millisecond, NoInotify: true, PollInterval: 10 * time.Millisecond,
		OnRecycle: func(v, reason string) { recycled <- v + ": " + reason }})
	ctx := ctxFor(t, 5*time.Second)
	got, _ := pass(t, f, ctx)
	sameItems(t, "first", got, readWhole(t, "bacula-9.6.7-plain-md5.vol"))
	f.Commit()

	// Truncated, then rewritten with another volume.
	done := make(chan []item)
	go func() {
		open, err := f.Next(ctx)
		if err != nil {
			t.Error(err)
			close(done)
			return
		}
		files, _ := open(ctx)
		done <- collect(t, files)
	}()
	time.Sleep(50 * time.Millisecond)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-recycled:
		t.Log("recycled:", r)
	case <-ctx.Done():
		t.Fatal("truncation not seen")
	}
	os.WriteFile(path, fixture(t, "bacula-9.6.7-accurate-1-full.vol"), 0o600)
	sameItems(t, "after truncation", <-done, readWhole(t, "bacula-9.6.7-accurate-1-full.vol"))
	f.Commit()

	// Relabelled over in one go (larger: no shrink to see).
	f.Close()
	f2 := NewFollow(dir, f.statePath, FollowOptions{Idle: 50 * time.Millisecond, Logger: testLogger(t),
		OnRecycle: func(v, reason string) { recycled <- v + ": " + reason }})
	defer f2.Close()
	os.WriteFile(path, fixture(t, "bacula-9.6.7-interleave-2jobs.vol"), 0o600)
	got, _ = pass(t, f2, ctx)
	select {
	case r := <-recycled:
		t.Log("recycled:", r)
	default:
		t.Fatal("relabelling not reported")
	}
	sameItems(t, "relabelled", got, readWhole(t, "bacula-9.6.7-interleave-2jobs.vol"))
}

// A pass ends with one job of two unfinished (Stall); after a restart from
// the saved position, only that job is read, whole.
func TestFollowRestartRereadsUnfinishedJob(t *testing.T) {
	const fx = "bacula-9.6.7-interleave-2jobs.vol"
	data := fixture(t, fx)
	// Cut after the block holding the first EOS.
	cut := 0
	for _, off := range blocks(t, data) {
		bi, err := parseBlock(data[off:])
		if err != nil {
			t.Fatal(err)
		}
		if len(bi.eos) > 0 {
			cut = off + bi.length
			break
		}
	}
	if cut == 0 || cut == len(data) {
		t.Fatalf("cut %d", cut)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "Vol-0001")
	os.WriteFile(path, data[:cut], 0o600)
	f, state := newFollow(t, dir, FollowOptions{Stall: 200 * time.Millisecond})
	ctx := ctxFor(t, 5*time.Second)
	first, _ := pass(t, f, ctx)
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	whole := readWhole(t, fx)
	ends := jobs(first)
	if len(ends) != 2 {
		t.Fatalf("first pass jobs %v", ends)
	}
	var done, open string
	for _, it := range first {
		if it.kind == "job-end" {
			if contains(it.desc, "ended=true") {
				done = it.job
			} else {
				open = it.job
			}
		}
	}
	if done == "" || open == "" {
		t.Fatalf("first pass jobs %v", ends)
	}
	sameItems(t, "job done in the first pass", only(first, done), only(whole, done))

	fh, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	fh.Write(data[cut:])
	fh.Close()
	f2 := NewFollow(dir, state, FollowOptions{Idle: 100 * time.Millisecond, Logger: testLogger(t)})
	defer f2.Close()
	second, _ := pass(t, f2, ctx)
	if j := jobs(second); len(j) != 1 {
		t.Fatalf("second pass jobs %v, want %s only", j, open)
	}
	sameItems(t, "unfinished job, read again", second, only(whole, open))
	if err := f2.Commit(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(state)
	var st followState
	json.Unmarshal(b, &st)
	if st.Volumes[0].Resume != int64(len(data)) || len(st.Ended) != 0 {
		t.Fatalf("final state %s", b)
	}
}

// JobEnded ends a pass without waiting for Idle.
func TestFollowJobEnded(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "v"), fixture(t, "bacula-9.6.7-accurate-1-full.vol"), 0o600)
	f, _ := newFollow(t, dir, FollowOptions{Idle: time.Hour})
	ctx := ctxFor(t, 5*time.Second)
	open, err := f.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		f.JobEnded(13)
	}()
	start := time.Now()
	files, _ := open(ctx)
	got := collect(t, files)
	if time.Since(start) > 3*time.Second {
		t.Fatal("JobEnded did not end the pass")
	}
	sameItems(t, "items", got, readWhole(t, "bacula-9.6.7-accurate-1-full.vol"))
}
