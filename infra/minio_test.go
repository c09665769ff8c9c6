package infra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/notification"

	"github.com/vision-platform/vp/internal/testsupport"
)

// intakeStandIn stands in for dataset-intake: it counts the notifications
// of key that carry the bearer token, by target (MinIO sends one per
// target).
type intakeStandIn struct {
	*httptest.Server
	mu  sync.Mutex
	got int
}

func newIntakeStandIn(t *testing.T, token, key string) *intakeStandIn {
	s := &intakeStandIn{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if r.Header.Get("Authorization") == "Bearer "+token && strings.Contains(string(b), key) {
			s.mu.Lock()
			s.got++
			s.mu.Unlock()
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *intakeStandIn) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got
}

// putAndWait makes the datasets bucket notify arns, puts an object and
// waits for every target's notification to reach the stand-in.
func putAndWait(t *testing.T, c *miniogo.Client, m MinIO, arns []string, intake *intakeStandIn, key string) {
	t.Helper()
	ctx := context.Background()
	testsupport.Eventually(t, 30*time.Second, "MinIO making the bucket", func() bool {
		err := c.MakeBucket(ctx, m.Notify, miniogo.MakeBucketOptions{})
		return err == nil || miniogo.ToErrorResponse(err).Code == "BucketAlreadyOwnedByYou"
	})
	cfg := notification.Configuration{}
	for _, arn := range arns {
		a, err := notification.NewArnFromString(arn)
		if err != nil {
			t.Fatal(err)
		}
		q := notification.NewConfig(a)
		q.AddEvents(notification.ObjectCreatedAll)
		cfg.AddQueue(q)
	}
	// MinIO loads its webhook targets after its health check answers:
	// until then it says the ARNs do not exist.
	var err error
	testsupport.Eventually(t, 30*time.Second, fmt.Sprintf("MinIO taking the notification to %v", arns), func() bool {
		err = c.SetBucketNotification(ctx, m.Notify, cfg)
		return err == nil
	})
	if _, err := c.PutObject(ctx, m.Notify, key, strings.NewReader("name: cats\n"), int64(len("name: cats\n")), miniogo.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	// The queued target sends on MinIO's 3-second tick.
	testsupport.Eventually(t, 30*time.Second, "a notification with the token from each target", func() bool { return intake.count() >= len(arns) })
}

// TestInt_MinIOWebhook starts a real MinIO with the rendered webhook
// settings as its environment (the documented snippet; the Job's mc admin
// config set takes the same keys and values, and mc itself is not at hand
// here): a new object in the datasets bucket reaches dataset-intake's
// stand-in from both targets, with the token, through the targets' ARNs.
func TestInt_MinIOWebhook(t *testing.T) {
	testsupport.Integration(t)
	const token, key = "t0ken-of-the-test", "cats/dataset.yaml"
	o := mustOptions(t, WithMinIO(MinIO{QueueDir: t.TempDir()}))
	m := o.minio
	fill := func(intake *intakeStandIn, s string) string {
		s = strings.ReplaceAll(s, IntakeURL(o.namespace), intake.URL+"/")
		s = strings.ReplaceAll(s, "$(VP_INTAKE_TOKEN)", token)
		return strings.ReplaceAll(s, "<Secret "+IntakeSecret.Name+", key "+IntakeSecret.Key+">", token)
	}

	t.Run("environment", func(t *testing.T) {
		intake := newIntakeStandIn(t, token, key)
		addr := testsupport.FreeAddr(t)
		env := append(os.Environ(), "MINIO_ROOT_USER="+testsupport.MinIOUser, "MINIO_ROOT_PASSWORD="+testsupport.MinIOPassword)
		var arns []string
		for _, w := range m.Webhooks() {
			for _, kv := range w.Env(m, o.namespace) {
				env = append(env, fill(intake, kv))
			}
			arns = append(arns, w.EnvARN())
		}
		cmd := exec.Command(testsupport.MinIOBinary(t), "server", filepath.Join(t.TempDir(), "data"), "--address", addr, "--console-address", testsupport.FreeAddr(t), "--quiet")
		cmd.Env = env
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Error(err)
			}
			var ee *exec.ExitError
			if err := cmd.Wait(); err != nil && !errors.As(err, &ee) { // killed: an *exec.ExitError
				t.Error(err)
			}
		})
		testsupport.WaitHTTP(t, "http://"+addr+"/minio/health/ready", 30*time.Second)
		c, err := miniogo.New(addr, &miniogo.Options{Creds: credentials.NewStaticV4(testsupport.MinIOUser, testsupport.MinIOPassword, "")})
		if err != nil {
			t.Fatal(err)
		}
		putAndWait(t, c, m, arns, intake, key)
		if t.Failed() {
			t.Logf("MinIO's output:\n%s", out.String())
		}
	})
}
