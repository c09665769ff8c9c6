package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/vision-platform/vp/internal/testsupport"
)

const goodTriggers = `
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: intake
spec:
  broker: default
  filter:
    attributes:
      type: dev.visionplatform.dataset.uploaded
  subscriber:
    uri: http://127.0.0.1:8081/
---
# a comment-only document separator is fine
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: runs
  namespace: team-a
spec:
  broker: ml
  filters:
  - prefix:
      type: dev.visionplatform.run.
  - any:
    - exact: {jobid: job-1}
    - cesql: "source LIKE '/runner/%'"
  subscriber:
    uri: http://127.0.0.1:8082/events
  delivery:
    retry: 3
    backoffPolicy: linear
    backoffDelay: PT0.5S
    timeout: PT10S
    deadLetterSink:
      uri: http://127.0.0.1:8083/dead
`

func TestParseTriggers(t *testing.T) {
	trs, err := ParseTriggers("t.yaml", []byte(goodTriggers))
	if err != nil {
		t.Fatalf("ParseTriggers() = %v", err)
	}
	if len(trs) != 2 {
		t.Fatalf("ParseTriggers() gave %d triggers, want 2", len(trs))
	}
	if trs[0].Metadata.Namespace != "default" || trs[0].Spec.Broker != "default" {
		t.Errorf("defaults: namespace %q broker %q", trs[0].Metadata.Namespace, trs[0].Spec.Broker)
	}
	c, err := compileTrigger(trs[1], DefaultDelivery)
	if err != nil {
		t.Fatal(err)
	}
	want := Delivery{Retry: 3, Exponential: false, Delay: 500 * time.Millisecond, Timeout: 10 * time.Second, DeadLetter: "http://127.0.0.1:8083/dead"}
	if c.Delivery != want {
		t.Errorf("delivery = %+v, want %+v", c.Delivery, want)
	}
	c0, err := compileTrigger(trs[0], DefaultDelivery)
	if err != nil {
		t.Fatal(err)
	}
	if c0.Delivery != DefaultDelivery {
		t.Errorf("default delivery = %+v, want %+v", c0.Delivery, DefaultDelivery)
	}
}

func TestParseTriggersErrors(t *testing.T) {
	head := "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t\nspec:\n"
	cases := []struct {
		desc string
		yaml string
		want []string // substrings of the error, in order
	}{
		{"unknown field", head + "  subscriber:\n    uri: http://x/\n  bogus: 1\n", []string{"t.yaml:8:", "bogus"}},
		{"unknown nested field", head + "  subscriber:\n    uri: http://x/\n  delivery:\n    retries: 3\n", []string{"t.yaml:9:", "retries"}},
		{"subscriber ref unsupported", head + "  subscriber:\n    ref:\n      kind: Service\n      name: x\n", []string{"t.yaml:7:", "spec.subscriber.ref is not supported"}},
		{"missing subscriber", head + "  broker: default\n", []string{"t.yaml:", "spec.subscriber.uri: required"}},
		{"bad uri", head + "  subscriber:\n    uri: not a url\n", []string{"t.yaml:7:", "spec.subscriber.uri"}},
		{"bad backoff", head + "  subscriber:\n    uri: http://x/\n  delivery:\n    backoffPolicy: random\n    backoffDelay: 5s\n", []string{"t.yaml:9:", "backoffPolicy", "t.yaml:10:", "backoffDelay"}},
		{"retryAfterMax unsupported", head + "  subscriber:\n    uri: http://x/\n  delivery:\n    retryAfterMax: PT1S\n", []string{"t.yaml:9:", "spec.delivery.retryAfterMax is not supported"}},
		{"bad filter", head + "  subscriber:\n    uri: http://x/\n  filters:\n  - exact: {a: 1, b: 2}\n", []string{"t.yaml:8:", "spec.filters[0].exact"}},
		{"wrong kind", "apiVersion: v1\nkind: Service\nmetadata:\n  name: t\nspec:\n  subscriber:\n    uri: http://x/\n", []string{"t.yaml:1:", "apiVersion", "t.yaml:2:", "kind"}},
		{"duplicate", head + "  subscriber:\n    uri: http://x/\n---\n" + head + "  subscriber:\n    uri: http://x/\n", []string{"defined twice"}},
		{"bad name", strings.Replace(head, "name: t", "name: Bad_Name", 1) + "  subscriber:\n    uri: http://x/\n", []string{"t.yaml:4:", "metadata.name"}},
		{"not yaml", "a: [", []string{"t.yaml:"}},
		{"wrong type", head + "  subscriber:\n    uri: http://x/\n  delivery:\n    retry: many\n", []string{"t.yaml:9:", "retry"}},
		{"backoff overflows", head + "  subscriber:\n    uri: http://x/\n  delivery:\n    backoffDelay: P99999999999W\n", []string{"t.yaml:9:", "spec.delivery.backoffDelay", "too long"}},
		{"backoff over a day", head + "  subscriber:\n    uri: http://x/\n  delivery:\n    backoffDelay: PT25H\n", []string{"t.yaml:9:", "spec.delivery.backoffDelay", "over the limit of 24h"}},
		{"timeout over a day", head + "  subscriber:\n    uri: http://x/\n  delivery:\n    timeout: P2D\n", []string{"t.yaml:9:", "spec.delivery.timeout", "over the limit"}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			_, err := ParseTriggers("t.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatal("ParseTriggers() = nil, want an error")
			}
			if missing := testsupport.InOrder(err.Error(), c.want...); missing != "" {
				t.Fatalf("ParseTriggers() error %q lacks %q (in order %q)", err, missing, c.want)
			}
		})
	}
}

func TestParseISODuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"PT0.2S": 200 * time.Millisecond, "PT10S": 10 * time.Second, "PT1M30S": 90 * time.Second,
		"P1DT2H": 26 * time.Hour, "P1W": 7 * 24 * time.Hour, "PT0S": 0,
	} {
		got, err := ParseISODuration(in)
		if err != nil || got != want {
			t.Errorf("ParseISODuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "P", "PT", "5s", "P1Y", "P1M", "PT1.5.5S", "P1DT",
		"P99999999999W", "P9999999999999999999D", "PT99999999999999999999S", "PT2562047H47M17S", "P15250W1DT23H47M16.9S"} {
		if _, err := ParseISODuration(in); err == nil {
			t.Errorf("ParseISODuration(%q) = nil error", in)
		}
	}
}

// TestBackoffBounded: the longest delays a delivery spec allows, retried
// many times, give long backoffs, never overflowing ones.
func TestBackoffBounded(t *testing.T) {
	for _, d := range []Delivery{{Delay: MaxDeliveryDuration}, {Delay: MaxDeliveryDuration, Exponential: true}, {Delay: time.Nanosecond, Exponential: true}} {
		prev := time.Duration(0)
		for _, n := range []int{1, 2, 30, 31, 62, 63, 64, 1000, 1 << 31} {
			got := d.Backoff(n)
			if got < prev || got > MaxDeliveryDuration {
				t.Errorf("%+v.Backoff(%d) = %v, want between %v and %v", d, n, got, prev, MaxDeliveryDuration)
			}
			prev = got
		}
	}
}

func TestBackoff(t *testing.T) {
	lin := Delivery{Delay: 100 * time.Millisecond}
	exp := Delivery{Delay: 100 * time.Millisecond, Exponential: true}
	for n, want := range map[int][2]time.Duration{1: {100 * time.Millisecond, 200 * time.Millisecond}, 3: {300 * time.Millisecond, 800 * time.Millisecond}} {
		if got := lin.Backoff(n); got != want[0] {
			t.Errorf("linear Backoff(%d) = %v, want %v", n, got, want[0])
		}
		if got := exp.Backoff(n); got != want[1] {
			t.Errorf("exponential Backoff(%d) = %v, want %v", n, got, want[1])
		}
	}
}
