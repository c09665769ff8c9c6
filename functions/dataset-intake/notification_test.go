package datasetintake

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
)

// minioBody is a notification as MinIO's webhook target posts it (trimmed
// of fields the function does not read, plus one it does not know).
const minioBody = `{
  "EventName": "s3:ObjectCreated:Put",
  "Key": "datasets/cats%2Fa+b.png",
  "Records": [
    {
      "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "",
      "eventTime": "2026-11-29T10:00:00.000Z", "eventName": "s3:ObjectCreated:Put",
      "userIdentity": {"principalId": "vp-test"},
      "s3": {
        "s3SchemaVersion": "1.0", "configurationId": "Config",
        "bucket": {"name": "datasets", "ownerIdentity": {"principalId": "vp-test"}, "arn": "arn:aws:s3:::datasets"},
        "object": {"key": "cats%2Fa+b.png", "size": 12, "eTag": "5eb63bbbe01eeed093cb22bb8f5acdc3",
                   "contentType": "image/png", "versionId": "v1", "sequencer": "17F0"}
      },
      "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64) minio-go/v7.0.0"},
      "somethingNew": true
    },
    {
      "eventName": "s3:ObjectCreated:CompleteMultipartUpload",
      "s3": {"bucket": {"name": "datasets"}, "object": {"key": "k%C3%A4se%2F%E7%8C%AB+%2B1.png", "size": 3, "eTag": "\"abc-2\""}}
    },
    {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": "datasets"}, "object": {"key": "bad%zzescape"}}},
    {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": ""}, "object": {"key": "x"}}}
  ]
}`

func TestParseNotification(t *testing.T) {
	objs, bad, err := parseNotification([]byte(minioBody))
	if err != nil {
		t.Fatalf("parseNotification() = %v", err)
	}
	want := []object{
		{Event: "s3:ObjectCreated:Put", Bucket: "datasets", Key: "cats/a b.png", Size: 12, ETag: "5eb63bbbe01eeed093cb22bb8f5acdc3", VersionID: "v1"},
		{Event: "s3:ObjectCreated:CompleteMultipartUpload", Bucket: "datasets", Key: "käse/猫 +1.png", Size: 3, ETag: "abc-2"},
	}
	if diff := cmp.Diff(want, objs); diff != "" {
		t.Errorf("parseNotification() objects (-want +got):\n%s", diff)
	}
	if len(bad) != 2 {
		t.Errorf("parseNotification() bad records = %q, want the bad escape and the missing bucket", bad)
	}
}

func TestParseNotificationPingAndErrors(t *testing.T) {
	for _, body := range []string{"", "  \n", "{}", `{"Records": []}`, `{"EventName": "", "Key": ""}`} {
		objs, bad, err := parseNotification([]byte(body))
		if err != nil || len(objs) != 0 || len(bad) != 0 {
			t.Errorf("parseNotification(%q) = %v, %v, %v; want a test ping: nothing, no error", body, objs, bad, err)
		}
	}
	for _, body := range []string{"not json", `{"Records": {"a": 1}}`, `[1, 2]`} {
		if _, _, err := parseNotification([]byte(body)); err == nil {
			t.Errorf("parseNotification(%q) = nil error", body)
		}
	}
}

func TestCreatesContent(t *testing.T) {
	for ev, want := range map[string]bool{
		"s3:ObjectCreated:Put":                         true,
		"s3:ObjectCreated:Post":                        true,
		"s3:ObjectCreated:Copy":                        true,
		"s3:ObjectCreated:CompleteMultipartUpload":     true,
		"s3:ObjectCreated:PutTagging":                  false,
		"s3:ObjectCreated:DeleteTagging":               false,
		"s3:ObjectCreated:PutRetention":                false,
		"s3:ObjectCreated:PutLegalHold":                false,
		"s3:ObjectCreated:PutACL":                      false,
		"s3:ObjectRemoved:Delete":                      false,
		"s3:ObjectRemoved:DeleteMarkerCreated":         false,
		"s3:ObjectAccessed:Get":                        false,
		"s3:ObjectAccessed:Head":                       false,
		"s3:Replication:OperationCompletedReplication": false,
		"": false,
	} {
		if got := createsContent(ev); got != want {
			t.Errorf("createsContent(%q) = %v, want %v", ev, got, want)
		}
	}
}

// TestHandleWithoutStore: what Handle answers before it touches the store,
// and the counters it keeps.
func TestHandleWithoutStore(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := New(WithToken("tok"), WithMetrics(reg), WithLogger(zerolog.Nop()))
	if err := f.Start(context.Background(), map[string]string{"VP_S3_ENDPOINT": "127.0.0.1:1", "K_SINK": "http://127.0.0.1:1/"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, auth, body string
		want               int
	}{
		{http.MethodPost, "", "{}", http.StatusUnauthorized},
		{http.MethodPost, "Bearer nope", "{}", http.StatusUnauthorized},
		{http.MethodPost, "bearer tok", "", http.StatusOK},
		{http.MethodPost, "Bearer tok", `{"Records":[]}`, http.StatusOK},
		{http.MethodPost, "Bearer tok", `{"Records":`, http.StatusBadRequest},
		{http.MethodGet, "Bearer tok", "", http.StatusMethodNotAllowed},
		{http.MethodHead, "", "", http.StatusOK},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(c.method, "/", strings.NewReader(c.body))
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		f.Handle(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s with %q and %q = %d, want %d", c.method, c.auth, c.body, rec.Code, c.want)
		}
	}
	for outcome, want := range map[string]float64{"unauthorized": 2, "ping": 2, "bad_request": 1} {
		if got := testutil.ToFloat64(f.notifications.WithLabelValues(outcome)); got != want {
			t.Errorf("vp_dataset_intake_records_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "vp_dataset_intake_records_total"); err != nil || n != 3 {
		t.Errorf("registry holds %d series, %v; want 3", n, err)
	}
}
