package commands

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vision-platform/vp/internal/testsupport"
)

func TestRegistryFlagsRefuseNonPositive(t *testing.T) {
	for _, flag := range []string{"--read-header-timeout", "--idle-timeout", "--progress-timeout", "--upload-purge-age", "--upload-purge-interval"} {
		t.Run(flag, func(t *testing.T) {
			out, err := run(context.Background(), "", "registry", "--data", t.TempDir(), "--addr", "127.0.0.1:0", flag, "0s")
			if err == nil || !strings.Contains(err.Error(), flag) {
				t.Errorf("vp registry %s 0s = %v (%s), want an error naming %s", flag, err, out, flag)
			}
		})
	}
}

// TestInt_RegistryCommand runs `vp registry` with its limits set by flags
// and stops it with its context.
func TestInt_RegistryCommand(t *testing.T) {
	testsupport.Integration(t)
	addr := testsupport.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := run(ctx, "", "registry", "--data", t.TempDir(), "--addr", addr, "--log-format", "console",
			"--idle-timeout", "30s", "--progress-timeout", "20s", "--upload-purge-age", "1h", "--upload-purge-interval", "5m")
		done <- err
	}()
	testsupport.WaitHTTP(t, "http://"+addr+"/v2/", 15*time.Second)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("vp registry after its context ended: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("vp registry still running 30 s after its context ended")
	}
}
