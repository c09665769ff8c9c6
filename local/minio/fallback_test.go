package minio

import "testing"

// TestWithoutUnqueued: the fallback when MinIO left out an unqueued
// target keeps every bucket's queued targets and names the dropped ones.
func TestWithoutUnqueued(t *testing.T) {
	c := Config{
		Webhooks: []Webhook{{ID: "queued", QueueDir: "/q"}, {ID: "fast"}},
		Buckets:  []Bucket{{Name: "datasets", Notify: []string{"queued", "fast"}}, {Name: "runs"}},
	}
	if got := c.queuedOnly(); len(got) != 1 || got[0] != "fast" {
		t.Errorf("queuedOnly() = %v, want [fast]", got)
	}
	got := c.withoutUnqueued()
	if len(got) != 2 || got[0].Name != "datasets" || len(got[0].Notify) != 1 || got[0].Notify[0] != "queued" || len(got[1].Notify) != 0 {
		t.Errorf("withoutUnqueued() = %+v, want datasets notifying queued only, runs nothing", got)
	}
}
