package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"regexp"
)

var traceparentRE = regexp.MustCompile(`^00-([a-f0-9]{32})-([a-f0-9]{16})-([a-f0-9]{2})$`)

type traceKey struct{}

// ContextWithTraceparent returns ctx carrying a W3C traceparent, so events
// made under it continue the trace.
func ContextWithTraceparent(ctx context.Context, tp string) context.Context {
	return context.WithValue(ctx, traceKey{}, tp)
}

// TraceparentFrom returns the traceparent carried by ctx, or "".
func TraceparentFrom(ctx context.Context) string {
	tp, _ := ctx.Value(traceKey{}).(string)
	return tp
}

// ValidTraceparent reports whether tp is a version-00 W3C traceparent with
// non-zero trace and span ids.
func ValidTraceparent(tp string) bool {
	m := traceparentRE.FindStringSubmatch(tp)
	return m != nil && m[1] != "00000000000000000000000000000000" && m[2] != "0000000000000000"
}

// ChildTraceparent continues parent's trace with a new span id; with no
// valid parent it starts a new sampled trace.
func ChildTraceparent(parent string) string {
	if m := traceparentRE.FindStringSubmatch(parent); m != nil && ValidTraceparent(parent) {
		return "00-" + m[1] + "-" + randHex(8) + "-" + m[3]
	}
	return "00-" + randHex(16) + "-" + randHex(8) + "-01"
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
