package minio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/notification"
)

// ErrNoBinary is returned when the MinIO server is neither on PATH nor in
// the tool cache.
var ErrNoBinary = errors.New("the MinIO server is not installed (run make deps: it builds it into ~/.cache/vision-platform/bin)")

// Webhook is a notification target: MinIO posts its S3-style event records
// to Endpoint with "Authorization: Bearer Token", keeping what it cannot
// deliver under QueueDir until the endpoint answers again.
type Webhook struct {
	ID       string // target id (upper-cased): the ARN is arn:minio:sqs::ID:webhook
	Endpoint string
	Token    string
	QueueDir string
}

// ARN is the target's notification ARN.
func (w Webhook) ARN() string { return "arn:minio:sqs::" + strings.ToUpper(w.ID) + ":webhook" }

// Bucket is a bucket to make, with the webhooks (by id) told of every new
// object in it.
type Bucket struct {
	Name   string
	Notify []string
}

// Config is one server.
type Config struct {
	Binary      string // default: Find()
	DataDir     string // where it stores objects
	Addr        string // S3 API, host:port (default 127.0.0.1:9000)
	ConsoleAddr string // the console (default 127.0.0.1:9001)
	User        string
	Password    string
	Webhooks    []Webhook
	Buckets     []Bucket
	// Log receives the server's output (default: discarded).
	Log io.Writer
	// Ready bounds the wait for the server to answer (default 30 s).
	Ready time.Duration
}

// Server is a running MinIO server.
type Server struct {
	Endpoint string // host:port
	Client   *miniogo.Client
	// Dropped are the webhook targets without a queue folder that MinIO
	// left out at its start (they did not answer it then): the buckets
	// notify their queued targets only.
	Dropped  []string
	cmd      *exec.Cmd
	done     chan struct{}
	waitErr  error
	tail     *tailBuffer
	stopOnce sync.Once
}

// Find looks for the server on PATH, then in the tool cache that make deps
// fills.
func Find() (string, error) {
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err == nil {
		p := filepath.Join(home, ".cache", "vision-platform", "bin", "minio")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrNoBinary
}

// Start runs the server and returns once it answers, with its buckets made
// and their notifications set. The server stops with Stop, or when ctx
// ends.
func Start(ctx context.Context, c Config) (*Server, error) {
	if c.Binary == "" {
		p, err := Find()
		if err != nil {
			return nil, err
		}
		c.Binary = p
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:9000"
	}
	if c.ConsoleAddr == "" {
		c.ConsoleAddr = "127.0.0.1:9001"
	}
	if c.Ready == 0 {
		c.Ready = 30 * time.Second
	}
	if len(c.User) < 3 || len(c.Password) < 8 {
		return nil, errors.New("starting MinIO: a user of at least 3 characters and a password of at least 8 are required")
	}
	for _, a := range []string{c.Addr, c.ConsoleAddr} {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return nil, fmt.Errorf("starting MinIO: %s is not free (another MinIO or vp up running? choose other addresses): %w", a, err)
		}
		ln.Close()
	}
	if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("starting MinIO: %w", err)
	}
	env := append(os.Environ(),
		"MINIO_ROOT_USER="+c.User, "MINIO_ROOT_PASSWORD="+c.Password,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CALLHOME_ENABLE=off")
	for _, w := range c.Webhooks {
		if w.QueueDir != "" {
			if err := os.MkdirAll(w.QueueDir, 0o755); err != nil {
				return nil, fmt.Errorf("starting MinIO: webhook queue: %w", err)
			}
		}
		id := strings.ToUpper(w.ID)
		env = append(env,
			"MINIO_NOTIFY_WEBHOOK_ENABLE_"+id+"=on",
			"MINIO_NOTIFY_WEBHOOK_ENDPOINT_"+id+"="+w.Endpoint,
			"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_"+id+"="+w.Token,
			"MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_"+id+"="+w.QueueDir)
	}
	cmd := exec.Command(c.Binary, "server", c.DataDir, "--address", c.Addr, "--console-address", c.ConsoleAddr, "--quiet")
	cmd.Env = env
	tail := &tailBuffer{max: 8 << 10}
	var out io.Writer = tail
	if c.Log != nil {
		out = io.MultiWriter(tail, c.Log)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting MinIO (%s): %w", c.Binary, err)
	}
	s := &Server{Endpoint: c.Addr, cmd: cmd, done: make(chan struct{}), tail: tail}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.Stop()
		case <-s.done:
		}
	}()
	if err := s.waitReady(ctx, c.Ready); err != nil {
		s.Stop()
		return nil, err
	}
	cl, err := miniogo.New(c.Addr, &miniogo.Options{Creds: credentials.NewStaticV4(c.User, c.Password, "")})
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("connecting to MinIO: %w", err)
	}
	s.Client = cl
	// The health check answers before the object layer is up: retry what
	// the server says it is not ready for.
	deadline := time.Now().Add(c.Ready)
	var arnSince time.Time
	for {
		err := s.setup(ctx, c)
		if err == nil {
			return s, nil
		}
		code := miniogo.ToErrorResponse(errors.Unwrap(err)).Code
		if code == "InvalidArgument" || strings.Contains(err.Error(), "destination ARN does not exist") {
			// MinIO loads its webhook targets after its health check
			// answers (on a busy machine, seconds after): retry. One
			// without a queue folder may be left out for good if it did
			// not answer MinIO then; after 10 s keep to the queued
			// targets, which are always loaded, and say so.
			if arnSince.IsZero() {
				arnSince = time.Now()
			}
			if d := c.queuedOnly(); len(d) > 0 && time.Since(arnSince) > 10*time.Second {
				c.Buckets, s.Dropped = c.withoutUnqueued(), d
				continue
			}
		} else if code != "XMinioServerNotInitialized" {
			s.Stop()
			return nil, err
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, err
		}
		select {
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	url := "http://" + s.Endpoint + "/minio/health/ready"
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("MinIO exited at start (%v): %s", s.waitErr, s.tail.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("MinIO did not answer on %s within %s: %s", s.Endpoint, limit, s.tail.String())
		}
	}
}

func (s *Server) setup(ctx context.Context, c Config) error {
	arns := map[string]string{}
	for _, w := range c.Webhooks {
		arns[w.ID] = w.ARN()
	}
	for _, b := range c.Buckets {
		ok, err := s.Client.BucketExists(ctx, b.Name)
		if err != nil {
			return fmt.Errorf("checking bucket %s: %w", b.Name, err)
		}
		if !ok {
			if err := s.Client.MakeBucket(ctx, b.Name, miniogo.MakeBucketOptions{}); err != nil {
				return fmt.Errorf("making bucket %s: %w", b.Name, err)
			}
		}
		if len(b.Notify) == 0 {
			continue
		}
		cfg := notification.Configuration{}
		for _, id := range b.Notify {
			arn, ok := arns[id]
			if !ok {
				return fmt.Errorf("bucket %s: no webhook %q", b.Name, id)
			}
			a, err := notification.NewArnFromString(arn)
			if err != nil {
				return fmt.Errorf("bucket %s: %w", b.Name, err)
			}
			q := notification.NewConfig(a)
			q.AddEvents(notification.ObjectCreatedAll)
			cfg.AddQueue(q)
		}
		if err := s.Client.SetBucketNotification(ctx, b.Name, cfg); err != nil {
			return fmt.Errorf("setting the notification of bucket %s: %w", b.Name, err)
		}
	}
	return nil
}

// queuedOnly are the ids of the webhooks without a queue folder that some
// bucket notifies.
func (c Config) queuedOnly() []string {
	queued := map[string]bool{}
	for _, w := range c.Webhooks {
		queued[w.ID] = w.QueueDir != ""
	}
	var out []string
	for _, b := range c.Buckets {
		for _, id := range b.Notify {
			if !queued[id] && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	return out
}

// withoutUnqueued are the buckets notifying their queued webhooks only.
func (c Config) withoutUnqueued() []Bucket {
	queued := map[string]bool{}
	for _, w := range c.Webhooks {
		queued[w.ID] = w.QueueDir != ""
	}
	out := make([]Bucket, len(c.Buckets))
	for i, b := range c.Buckets {
		out[i] = Bucket{Name: b.Name}
		for _, id := range b.Notify {
			if queued[id] {
				out[i].Notify = append(out[i].Notify, id)
			}
		}
	}
	return out
}

// Stop ends the server (SIGTERM, then SIGKILL after 10 s) and waits.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if s.cmd.Process == nil {
			return
		}
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	})
}

// Done is closed once the server process has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Output is the end of what the server printed.
func (s *Server) Output() string { return s.tail.String() }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(t.buf.String())
}
