package deadletter

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events/sender"
	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/functions/funcyaml"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
	"github.com/vision-platform/vp/local/broker"
)

func TestFuncYAML(t *testing.T) {
	f, err := funcyaml.Parse("func.yaml", FuncYAML)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "dead-letter" || f.Invoke != funcyaml.InvokeCloudEvent || len(f.Deploy.Subscriptions) != 0 {
		t.Errorf("func.yaml: name %q, invoke %q, %d subscriptions; want dead-letter, cloudevent, none (it is a sink)", f.Name, f.Invoke, len(f.Deploy.Subscriptions))
	}
	if v, ok := f.Env("VP_DEAD_LETTER_BUCKET"); !ok || v != DefaultBucket {
		t.Errorf("func.yaml VP_DEAD_LETTER_BUCKET = %q, %v; want %q", v, ok, DefaultBucket)
	}
	if s := f.Deploy.Options.Scale; s == nil || s.Min == nil || *s.Min < 1 {
		t.Errorf("func.yaml scale = %+v, want min at least 1 (a dead letter that finds no sink is lost)", s)
	}
}

func letter(id, source, dest string) event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource(source)
	e.SetType("dev.visionplatform.run.finished")
	if dest != "" {
		e.SetExtension(ExtErrorDest, dest)
	}
	return e
}

func TestKey(t *testing.T) {
	day := time.Date(2026, 11, 29, 23, 30, 0, 0, time.FixedZone("KST", 9*3600)) // 14:30 UTC
	base := Key(day, letter("run-1", "/a", "http://x/"))
	cases := []struct {
		desc     string
		t        time.Time
		e        event.Event
		wantSame bool
	}{
		{"the same dead letter later that day", day.Add(time.Hour), letter("run-1", "/a", "http://x/"), true},
		{"another subscriber gave up on it", day, letter("run-1", "/a", "http://y/"), false},
		{"another source", day, letter("run-1", "/b", "http://x/"), false},
		{"the next day (UTC)", day.Add(10 * time.Hour), letter("run-1", "/a", "http://x/"), false},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			if got := Key(c.t, c.e); (got == base) != c.wantSame {
				t.Errorf("Key = %q beside %q, want same = %v", got, base, c.wantSame)
			}
		})
	}
	if !strings.HasPrefix(base, "2026-11-29/run-1-") || !strings.HasSuffix(base, ".json") || len(base) != len("2026-11-29/run-1-")+12+len(".json") {
		t.Errorf("Key = %q, want 2026-11-29/run-1-<12 hex>.json (the UTC day)", base)
	}
	odd := Key(day, letter("a/../b c?"+strings.Repeat("x", 300), "/a", ""))
	name := strings.TrimPrefix(odd, "2026-11-29/")
	if strings.ContainsAny(name, "/ ?") || len(name) > 100+1+12+len(".json") {
		t.Errorf("Key of an odd id = %q, want one path element of letters, digits and _.-, at most 118 characters", odd)
	}
}

func TestParseTypes(t *testing.T) {
	got := ParseTypes([]string{"run.finished, com.example.x", "", "dev.visionplatform.job.requested,run.nope"})
	want := []string{"dev.visionplatform.run.finished", "com.example.x", "dev.visionplatform.job.requested", "run.nope"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseTypes (-want +got):\n%s", diff)
	}
}

func TestFilterPrefixes(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		desc string
		f    Filter
		want []string
	}{
		{"no time: the whole bucket", Filter{}, []string{""}},
		{"since yesterday: a day around each end", Filter{Since: now.Add(-24 * time.Hour)}, []string{"2026-11-27/", "2026-11-28/", "2026-11-29/", "2026-11-30/"}},
		{"a closed range", Filter{Since: now.AddDate(0, 0, -10), Until: now.AddDate(0, 0, -9)}, []string{"2026-11-18/", "2026-11-19/", "2026-11-20/", "2026-11-21/"}},
		{"over a year: the whole bucket", Filter{Since: now.AddDate(-2, 0, 0)}, []string{""}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			if diff := cmp.Diff(c.want, c.f.prefixes(now)); diff != "" {
				t.Errorf("prefixes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHandleBeforeStart(t *testing.T) {
	f := New(WithLogger(zerolog.Nop()))
	if _, err := f.Handle(context.Background(), letter("1", "/a", "")); fn.StatusOf(err) != http.StatusServiceUnavailable {
		t.Errorf("Handle before Start = %v (status %d), want 503", err, fn.StatusOf(err))
	}
	if err := f.Start(context.Background(), map[string]string{}); err == nil || !strings.Contains(err.Error(), "VP_S3_ENDPOINT") {
		t.Errorf("Start() without VP_S3_ENDPOINT = %v, want an error naming it", err)
	}
}

// TestInt_DeadLetterAndReplay runs the dead-letter function as the local
// broker's dead-letter sink on a real MinIO: a subscriber that refuses an
// event gets it dead-lettered and kept with Knative's error extensions;
// replayed once the subscriber is fixed, it reaches the subscriber again
// through the broker, without them; a dry run and the filters send nothing.
func TestInt_DeadLetterAndReplay(t *testing.T) {
	testsupport.Integration(t)
	m := testsupport.StartMinIO(t)
	m.Bucket(t, DefaultBucket)
	store := objstore.FromMinIO(m.Client)

	dl := New(WithStore(store), WithLogger(zerolog.Nop()))
	if err := dl.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	h, err := fn.Handler(dl)
	if err != nil {
		t.Fatal(err)
	}
	dlSrv := httptest.NewServer(h)
	defer dlSrv.Close()

	var refusing atomic.Bool
	refusing.Store(true)
	var got atomic.Value // the last event the subscriber accepted
	sub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refusing.Load() {
			http.Error(w, "cannot read this run", http.StatusBadRequest)
			return
		}
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got.Store(*e)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer sub.Close()

	trs, err := broker.ParseTriggers("test", []byte(fmt.Sprintf(`apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: runs}
spec:
  filter: {attributes: {type: dev.visionplatform.run.finished}}
  subscriber: {uri: %s}
  delivery:
    retry: 1
    backoffDelay: PT0.01S
    deadLetterSink: {uri: %s}
`, sub.URL, dlSrv.URL)))
	if err != nil {
		t.Fatal(err)
	}
	// The local broker drops an event whose source and id it took within
	// its de-duplication window (a Knative broker keeps none): the replay
	// below comes after it.
	const window = 500 * time.Millisecond
	b, err := broker.New(context.Background(), broker.WithDataDir(t.TempDir()), broker.WithTriggers(trs...),
		broker.WithDedupWindow(window), broker.WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	bSrv := httptest.NewServer(b.Handler())
	defer bSrv.Close()
	ingress := bSrv.URL + "/default/default"
	s, err := sender.New(ingress)
	if err != nil {
		t.Fatal(err)
	}
	e := letter("run-0001-finished", "/test", "")
	e.SetExtension("jobid", "job-0001")
	if err := e.SetData("application/json", map[string]string{"status": "succeeded"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), e); err != nil {
		t.Fatal(err)
	}

	var kept []Letter
	testsupport.Eventually(t, 20*time.Second, "the dead letter kept in MinIO", func() bool {
		kept = nil
		for l, err := range List(context.Background(), store, DefaultBucket, Filter{}) {
			if err != nil {
				t.Fatal(err)
			}
			kept = append(kept, l)
		}
		return len(kept) > 0
	})
	l := kept[0]
	if l.Event.ID() != e.ID() || l.Dest() != sub.URL || l.Code() != "400" || !strings.HasPrefix(l.Key, time.Now().UTC().Format(DateLayout)+"/run-0001-finished-") {
		t.Errorf("kept %s: id %s, dest %q, code %q; want %s, %s, 400, under today's date", l.Key, l.Event.ID(), l.Dest(), l.Code(), e.ID(), sub.URL)
	}
	if l.Event.Extensions()["jobid"] != "job-0001" || string(l.Event.Data()) != `{"status":"succeeded"}` {
		t.Errorf("kept event lost its extensions or data: %v", l.Event)
	}

	// Selections that match nothing send nothing; a dry run neither.
	refusing.Store(false)
	for _, f := range []Filter{
		{Types: []string{"dev.visionplatform.job.requested"}},
		{Since: time.Now().Add(time.Hour)},
		{Until: time.Now().Add(-time.Hour)},
	} {
		sum, err := Replay(context.Background(), store, DefaultBucket, f, ReplayOptions{Sender: s})
		if err != nil || sum.Selected != 0 {
			t.Errorf("Replay(%+v) = %+v, %v; want nothing selected", f, sum, err)
		}
	}
	var reported []Outcome
	sum, err := Replay(context.Background(), store, DefaultBucket, Filter{}, ReplayOptions{DryRun: true,
		Report: func(_ Letter, o Outcome, _ error) { reported = append(reported, o) }})
	if err != nil || sum.Selected != 1 || sum.Sent != 0 || !cmp.Equal(reported, []Outcome{WouldSend}) {
		t.Errorf("dry run = %+v, %v, reported %v; want one selected, none sent", sum, err, reported)
	}
	time.Sleep(200 * time.Millisecond) // a wrong send would have reached the subscriber by now
	if got.Load() != nil {
		t.Fatalf("the subscriber got an event from a dry run or a filter that selects nothing")
	}

	time.Sleep(3 * window) // past the local broker's de-duplication window
	f := Filter{Types: ParseTypes([]string{"run.finished"}), Since: time.Now().Add(-time.Hour)}
	sum, err = Replay(context.Background(), store, DefaultBucket, f, ReplayOptions{Sender: s})
	if err != nil || sum.Sent != 1 {
		t.Fatalf("Replay = %+v, %v; want one sent", sum, err)
	}
	testsupport.Eventually(t, 20*time.Second, "the replayed event at the subscriber", func() bool { return got.Load() != nil })
	r := got.Load().(event.Event)
	if r.ID() != e.ID() || r.Extensions()["jobid"] != "job-0001" || string(r.Data()) != `{"status":"succeeded"}` {
		t.Errorf("replayed event = %v, want the original", r)
	}
	for _, k := range []string{ExtErrorDest, ExtErrorCode, ExtErrorData} {
		if _, ok := r.Extensions()[k]; ok {
			t.Errorf("replayed event carries %s", k)
		}
	}
}

// TestInt_DeadLetterStoreDown: a store that cannot take the dead letter is
// a failure the broker retries.
func TestInt_DeadLetterStoreDown(t *testing.T) {
	testsupport.Integration(t)
	m := testsupport.StartMinIO(t)
	dl := New(WithStore(objstore.FromMinIO(m.Client)), WithBucket("no-such-bucket"), WithLogger(zerolog.Nop()))
	if err := dl.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := dl.Handle(context.Background(), letter("1", "/a", "http://x/")); fn.StatusOf(err) != http.StatusServiceUnavailable {
		t.Errorf("Handle with the bucket missing = %v (status %d), want 503", err, fn.StatusOf(err))
	}
}
