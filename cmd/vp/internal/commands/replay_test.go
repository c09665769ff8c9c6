package commands

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/rs/zerolog"

	deadletter "github.com/vision-platform/vp/functions/dead-letter"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
)

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: ""},
		{in: "2026-11-28T10:00:00Z", want: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)},
		{in: "2026-11-28", want: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)},
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "3d", want: now.Add(-72 * time.Hour)},
		{in: "yesterday", bad: true},
		{in: "-2h", bad: true},
	}
	for _, c := range cases {
		got, err := parseWhen(c.in, now)
		if (err != nil) != c.bad || !got.Equal(c.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v (error: %v)", c.in, got, err, c.want, c.bad)
		}
	}
}

// TestInt_Replay keeps two dead letters with the dead-letter function on a
// real MinIO, then runs vp replay against a sink standing in for the
// broker: a dry run and a selection of the future send nothing; --type
// sends the one asked for, without Knative's error extensions.
func TestInt_Replay(t *testing.T) {
	testsupport.Integration(t)
	m := testsupport.StartMinIO(t)
	m.Bucket(t, deadletter.DefaultBucket)
	dl := deadletter.New(deadletter.WithStore(objstore.FromMinIO(m.Client)), deadletter.WithLogger(zerolog.Nop()))
	if err := dl.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"dev.visionplatform.run.finished", "com.example.other"} {
		e := event.New()
		e.SetID("id-" + typ)
		e.SetSource("/test")
		e.SetType(typ)
		e.SetExtension(deadletter.ExtErrorDest, "http://run-recorder.vp.svc.cluster.local/")
		e.SetExtension(deadletter.ExtErrorCode, "500")
		if _, err := dl.Handle(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	sink := testsupport.NewSink(t, nil)
	t.Setenv("VP_S3_ENDPOINT", m.Endpoint)
	t.Setenv("VP_S3_ACCESS_KEY", testsupport.MinIOUser)
	t.Setenv("VP_S3_SECRET_KEY", testsupport.MinIOPassword)

	out, err := run(context.Background(), "", "replay", "--broker", sink.URL, "--dry-run")
	rows := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, string(deadletter.WouldSend)+" ") {
			rows++
		}
	}
	if err != nil || !strings.Contains(out, "2 selected, 2 would send (dry run)") || rows != 2 {
		t.Fatalf("vp replay --dry-run = %v\n%s", err, out)
	}
	out, err = run(context.Background(), "", "replay", "--broker", sink.URL, "--since", time.Now().Add(time.Hour).Format(time.RFC3339))
	if err != nil || !strings.Contains(out, "0 selected") {
		t.Fatalf("vp replay --since (in an hour) = %v\n%s", err, out)
	}
	if got := len(sink.OfType("dev.visionplatform.run.finished")) + len(sink.OfType("com.example.other")); got != 0 {
		t.Fatalf("the broker got %d events from a dry run and an empty selection", got)
	}
	out, err = run(context.Background(), "", "replay", "--broker", sink.URL, "--type", "run.finished", "--since", "1h")
	if err != nil || !strings.Contains(out, "1 selected, 1 sent") || !strings.Contains(out, "http://run-recorder.vp.svc.cluster.local/") {
		t.Fatalf("vp replay --type run.finished = %v\n%s", err, out)
	}
	got := sink.OfType("dev.visionplatform.run.finished")
	if len(got) != 1 || len(sink.OfType("com.example.other")) != 0 {
		t.Fatalf("the broker got %d run.finished and %d others, want 1 and 0", len(got), len(sink.OfType("com.example.other")))
	}
	if _, ok := got[0].Extensions()[deadletter.ExtErrorDest]; ok {
		t.Errorf("the replayed event carries %s", deadletter.ExtErrorDest)
	}

	if _, err := run(context.Background(), "", "replay", "--since", "tomorrow"); err == nil || !strings.Contains(err.Error(), "--since") {
		t.Errorf("vp replay --since tomorrow = %v, want an error naming --since", err)
	}
	t.Setenv("VP_S3_ENDPOINT", "")
	if _, err := run(context.Background(), "", "replay", "--dry-run"); err == nil || !strings.Contains(err.Error(), "VP_S3_ENDPOINT") {
		t.Errorf("vp replay without VP_S3_ENDPOINT = %v, want an error naming it", err)
	}
}
