package ociregistry

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// TestLogsStayOwn: New leaves the process-wide logrus logger alone (level
// and output), and distribution's logs go to the registry's own logger,
// discarded unless WithLogger names one.
func TestLogsStayOwn(t *testing.T) {
	std := logrus.StandardLogger()
	level, out := std.GetLevel(), std.Out
	t.Cleanup(func() { std.SetLevel(level); std.SetOutput(out) })
	var stdLog, ownLog bytes.Buffer
	std.SetOutput(&stdLog)
	std.SetLevel(logrus.DebugLevel)
	own := logrus.New()
	own.SetOutput(&ownLog)
	own.SetLevel(logrus.InfoLevel)

	quiet := newRegistry(t, t.TempDir())
	loud := newRegistry(t, t.TempDir(), WithLogger(own))
	if got := logrus.GetLevel(); got != logrus.DebugLevel {
		t.Errorf("logrus.GetLevel() after New = %s, want %s (unchanged)", got, logrus.DebugLevel)
	}
	for _, r := range []*Registry{quiet, loud} {
		srv := httptest.NewServer(r)
		for _, path := range []string{"/v2/", "/v2/vp/none/manifests/latest"} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		srv.Close()
	}
	if stdLog.Len() != 0 {
		t.Errorf("the process-wide logrus logger got:\n%s\nwant nothing", stdLog.String())
	}
	if !strings.Contains(ownLog.String(), "/v2/vp/none/manifests/latest") {
		t.Errorf("WithLogger's logger got:\n%s\nwant distribution's log of the failed request", ownLog.String())
	}
}

func TestOptionsRefuseNonPositive(t *testing.T) {
	for _, tc := range []struct {
		desc string
		opt  Option
	}{
		{"read header timeout", WithReadHeaderTimeout(0)},
		{"idle timeout", WithIdleTimeout(-1)},
		{"progress timeout", WithProgressTimeout(0)},
		{"upload purge age", WithUploadPurgeAge(0)},
		{"upload purge interval", WithUploadPurgeInterval(-5)},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := New(t.Context(), t.TempDir(), tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.desc) || !errors.Is(err, ErrNotPositive) {
				t.Errorf("New(%s) = %v, want an error naming it, wrapping ErrNotPositive", tc.desc, err)
			}
		})
	}
	if _, err := New(t.Context(), t.TempDir(), WithLogger(nil)); err == nil {
		t.Error("New(WithLogger(nil)) succeeded, want an error")
	}
}
