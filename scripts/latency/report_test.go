package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const fixture = "../../bacularec/testdata/bacula-9.6.7-plain-md5.vol"

// A synthetic run over a real volume: the volume grows 4096 bytes a
// millisecond; every file (but directories) appears on target 0 100 ms and
// on target 1 300 ms after the volume reached the end of the block holding
// its last record, through a temporary name; target 1 gets directory
// metadata 700 ms after the volume's last growth.
func TestReport(t *testing.T) {
	files, _, _, err := readVolume([]string{fixture})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(fixture)
	if err != nil {
		t.Fatal(err)
	}
	const base = int64(1_800_000_000) * 1e9
	ms := int64(time.Millisecond)
	vol := filepath.Base(fixture)
	var evs []event
	k := int64(0)
	for ; k*4096 < st.Size(); k++ {
		evs = append(evs, event{kind: 'V', t: base + k*ms, volume: vol, size: (k + 1) * 4096})
	}
	end := base + (k-1)*ms
	cookie := uint32(1)
	for i, f := range files {
		written := base + (f.end.BlockEnd+4095)/4096*ms - ms
		rel := relOf(f.path, "/tmp/brc-fixture-src")
		tmp := filepath.Join(filepath.Dir(rel), tempPrefix+"x."+string(rune('a'+i%26))+strings.Repeat("z", i/26))
		for tg, d := range []int64{100, 300} {
			at := written + d*ms
			evs = append(evs,
				event{kind: 'E', t: at - 50*ms, target: tg, op: "create", path: tmp},
				event{kind: 'E', t: at - 40*ms, target: tg, op: "close_write", path: tmp},
				event{kind: 'E', t: at, target: tg, op: "moved_from", cookie: cookie, path: tmp},
				event{kind: 'E', t: at, target: tg, op: "moved_to", cookie: cookie, path: rel})
			cookie++
		}
	}
	evs = append(evs, event{kind: 'E', t: end + 700*ms, target: 1, op: "attrib", dir: true, path: "plain"})

	dir := t.TempDir()
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.line())
	}
	evFile := filepath.Join(dir, "events")
	if err := os.WriteFile(evFile, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	o := reportOpts{events: evFile, vols: []string{fixture}, roots: []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")},
		strip: "/tmp/brc-fixture-src", tsv: filepath.Join(dir, "tsv"), big: 1 << 20}
	if err := runReport(o, &out); err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	for _, want := range []string{"t0_p50=0.100 ", "t0_p99=0.100 ", "t0_max=0.100 ", "t1_p50=0.300 ", "t1_max=0.300 ",
		"t0_missing=0 ", "t1_missing=0 ", "end_to_complete=0.700"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if !strings.Contains(out.String(), "renamed into place after n=41 p50=0.040s") {
		t.Errorf("report does not split the latency at the close of the temporary file")
	}
	tsv, _ := os.ReadFile(o.tsv)
	if n := strings.Count(string(tsv), "\n"); n != len(files)+1 {
		t.Errorf("tsv has %d lines, want %d", n, len(files)+1)
	}
}

func TestEventsRoundTrip(t *testing.T) {
	in := []event{
		{kind: 'V', t: 1, volume: "Vol-1", size: 64512},
		{kind: 'E', t: 2, target: 1, op: "moved_to", cookie: 7, path: "a\tb/c\nd \"e\""},
		{kind: 'S', t: 3, target: 0, dir: true, path: "d"},
		{kind: 'O', t: 4},
	}
	var b strings.Builder
	for _, e := range in {
		b.WriteString(e.line())
	}
	out, err := readEvents(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d events back, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i] != in[i] {
			t.Errorf("event %d: %+v, want %+v", i, out[i], in[i])
		}
	}
}

func TestPercentile(t *testing.T) {
	v := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for p, want := range map[float64]int64{50: 5, 90: 9, 99: 10, 100: 10, 1: 1} {
		if got := pct(v, p); got != want {
			t.Errorf("p%v = %d, want %d", p, got, want)
		}
	}
	if s := statsOf([]int64{3, 1, 2}); s.p50 != 2 || s.maxv != 3 || s.n != 3 {
		t.Errorf("statsOf: %+v", s)
	}
	if got := relOf("/srv/data/x", "/srv/"); got != "data/x" {
		t.Errorf("relOf = %q", got)
	}
	if got := relOf("/srvx/y", "/srv"); got != "srvx/y" {
		t.Errorf("relOf = %q", got)
	}
}
