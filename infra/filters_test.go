package infra

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/events/filter"
	"github.com/vision-platform/vp/local/broker"
	"github.com/vision-platform/vp/local/up"
)

// subscribers is, for an event, the functions whose triggers select it.
type subscribers func(e event.Event) []string

// knativeSubscribers compiles the rendered Triggers' filters with the
// platform's filter engine (Knative's semantics: filters, when set,
// replace filter.attributes).
func knativeSubscribers(t *testing.T, trs []*eventingv1.Trigger) subscribers {
	t.Helper()
	type compiled struct {
		m   filter.Matcher
		sub string
	}
	var cs []compiled
	for _, tr := range trs {
		var attrs *filter.Attributes
		if tr.Spec.Filter != nil {
			attrs = &filter.Attributes{Attributes: map[string]string(tr.Spec.Filter.Attributes)}
		}
		if len(tr.Spec.Filters) > 0 {
			t.Fatalf("Trigger %s uses filters:, which this comparison does not read", tr.Name)
		}
		m, err := filter.Compile(attrs, nil)
		if err != nil {
			t.Fatalf("Trigger %s: %v", tr.Name, err)
		}
		cs = append(cs, compiled{m, tr.Spec.Subscriber.Ref.Name})
	}
	return func(e event.Event) []string {
		var out []string
		for _, c := range cs {
			if c.m.Match(e) && !slices.Contains(out, c.sub) {
				out = append(out, c.sub)
			}
		}
		slices.Sort(out)
		return out
	}
}

// localSubscribers is the same for the triggers vp up gives the local
// broker, parsed by the broker and compiled with the same engine.
func localSubscribers(t *testing.T, trs []broker.Trigger) subscribers {
	t.Helper()
	type compiled struct {
		m   filter.Matcher
		sub string
	}
	var cs []compiled
	for _, tr := range trs {
		m, err := filter.Compile(tr.Spec.Filter, tr.Spec.Filters)
		if err != nil {
			t.Fatalf("trigger %s: %v", tr.Metadata.Name, err)
		}
		u, err := url.Parse(tr.Spec.Subscriber.URI)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, compiled{m, u.Host})
	}
	return func(e event.Event) []string {
		var out []string
		for _, c := range cs {
			if c.m.Match(e) && !slices.Contains(out, c.sub) {
				out = append(out, c.sub)
			}
		}
		slices.Sort(out)
		return out
	}
}

// TestTriggersSelectAsLocally: for every event type of the vocabulary (and
// one from elsewhere), the functions the Knative Triggers deliver it to
// are the functions vp up's triggers deliver it to: both come from the
// same func.yaml subscriptions, and the filter engine decides.
func TestTriggersSelectAsLocally(t *testing.T) {
	fns := functions(t)
	local, err := broker.ParseTriggers("vp up", []byte(up.SubscriptionTriggers(fns, func(name string) string { return "http://" + name + "/" })))
	if err != nil {
		t.Fatal(err)
	}
	rendered := ofKind[*eventingv1.Trigger](readTree(t, "."))
	if len(rendered) != len(local) {
		t.Fatalf("%d Knative Triggers, %d local triggers", len(rendered), len(local))
	}
	k, l := knativeSubscribers(t, rendered), localSubscribers(t, local)
	types := append([]string{"com.example.other"}, func() []string {
		var ts []string
		for _, typ := range events.Types() {
			ts = append(ts, string(typ))
		}
		return ts
	}()...)
	delivered := 0
	for _, typ := range types {
		e := event.New()
		e.SetID("1")
		e.SetSource("/test")
		e.SetType(typ)
		e.SetExtension(events.ExtJobID, "job-0123456789abcdef0123")
		got, want := k(e), l(e)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: subscribers (-local +knative):\n%s", typ, diff)
		}
		delivered += len(got)
		if strings.HasPrefix(typ, events.Prefix) && !slices.Contains(got, "run-recorder") {
			t.Errorf("%s: the run-recorder (subscribed to every event) does not get it: %v", typ, got)
		}
	}
	if delivered <= len(types) {
		t.Errorf("the triggers deliver %d events over %d types: the comparison saw almost nothing", delivered, len(types))
	}
}
