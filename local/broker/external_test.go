package broker

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/vision-platform/vp/internal/testsupport"
)

// TestInt_ExternalNATS runs the broker on a NATS server of its own (as
// --nats-url does with a cluster), reached over TCP.
func TestInt_ExternalNATS(t *testing.T) {
	testsupport.Integration(t)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	s := newSink(t, nil)
	trs, err := ParseTriggers("t.yaml", []byte(trigger("all", s.URL, "")))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(context.Background(), WithNATSURL(ns.ClientURL()), WithTriggers(trs...))
	if err != nil {
		t.Fatalf("New(WithNATSURL) = %v", err)
	}
	defer b.Close()
	srv := httptest.NewServer(b.Handler())
	defer srv.Close()
	for i := 0; i < 5; i++ {
		mustAccept(t, srv.URL+"/default/default", mkEvent(fmt.Sprint("x", i), "t"))
	}
	testsupport.Eventually(t, 10*time.Second, "delivery through the external server", func() bool { return len(s.ids()) == 5 })
	if _, err := New(context.Background(), WithNATSURL("nats://127.0.0.1:1")); err == nil {
		t.Error("New with an unreachable NATS URL succeeded")
	}
	if _, err := New(context.Background(), WithNATSURL(ns.ClientURL()), WithDataDir(t.TempDir())); err == nil {
		t.Error("New with both a NATS URL and a data directory succeeded")
	}
}
