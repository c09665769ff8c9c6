package testsupport

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MLflow is an MLflow tracking server process on loopback, with its
// runs in a SQLite file that outlives Kill, so Start brings the same
// server back.
type MLflow struct {
	URL string // http://127.0.0.1:port, the tracking URI
	DB  string // the SQLite file

	t    testing.TB
	bin  string
	args []string
	env  []string
	dir  string

	mu  sync.Mutex
	cmd *exec.Cmd
	out *SyncBuffer
}

// MLflowBinary finds the MLflow server make deps installs (make mlflow).
// Where make deps found no PyPI to install it from, the test skips,
// saying so; where it simply has not run, the test fails: run make deps.
func MLflowBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mlflow"); err == nil {
		return p
	}
	home, _ := os.UserHomeDir()
	bin := filepath.Join(home, ".cache", "vision-platform", "bin")
	if b, err := os.ReadFile(filepath.Join(bin, "mlflow.unavailable")); err == nil {
		if _, err := os.Stat(filepath.Join(bin, "mlflow")); err != nil {
			t.Skipf("the MLflow tracking server is not installed: make deps could not reach PyPI on this machine (%s); "+
				"the polyglot machine kind reaches PyPI and runs this test", bytes.TrimSpace(b))
		}
	}
	return cached(t, "the MLflow tracking server", "bin", "mlflow")
}

// MLflowConfig is what StartMLflow runs the server with.
type MLflowConfig struct {
	// ArtifactRoot is the default artifact root (--default-artifact-root),
	// e.g. s3://runs/.
	ArtifactRoot string
	// S3 is the MinIO the server reads s3:// artifacts from
	// (MLFLOW_S3_ENDPOINT_URL and the AWS credentials); nil for none.
	S3 *MinIO
}

// StartMLflow runs `mlflow server` with a SQLite backend on a free
// loopback port until the test ends, and waits until it answers.
func StartMLflow(t testing.TB, c MLflowConfig) *MLflow {
	t.Helper()
	dir := t.TempDir()
	addr := FreeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	m := &MLflow{URL: "http://" + addr, DB: filepath.Join(dir, "mlflow.db"), t: t, bin: MLflowBinary(t), dir: dir}
	m.args = []string{"server", "--backend-store-uri", "sqlite:///" + m.DB, "--host", host, "--port", port, "--workers", "1", "--no-serve-artifacts"}
	if c.ArtifactRoot != "" {
		m.args = append(m.args, "--default-artifact-root", c.ArtifactRoot)
	}
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "PYTHONPATH", "PYTHONHOME", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD":
			continue
		}
		m.env = append(m.env, kv)
	}
	// No background job runner: the tests need the tracking API only, and
	// it is a dozen processes on a small machine.
	m.env = append(m.env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false", "PYTHONUNBUFFERED=1")
	if c.S3 != nil {
		m.env = append(m.env, "MLFLOW_S3_ENDPOINT_URL=http://"+c.S3.Endpoint, "AWS_ACCESS_KEY_ID="+MinIOUser,
			"AWS_SECRET_ACCESS_KEY="+MinIOPassword, "AWS_DEFAULT_REGION=us-east-1")
	}
	t.Cleanup(m.Kill)
	m.Start()
	return m
}

// Start runs the server (again, after Kill: the same port and database)
// and waits until /health answers 200.
func (m *MLflow) Start() {
	m.t.Helper()
	m.mu.Lock()
	if m.cmd != nil {
		m.mu.Unlock()
		m.t.Fatal("MLflow: Start while it runs")
	}
	cmd := exec.Command(m.bin, m.args...)
	cmd.Dir, cmd.Env = m.dir, m.env
	out := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		m.mu.Unlock()
		m.t.Fatalf("starting MLflow: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	m.cmd, m.out = cmd, out
	m.mu.Unlock()
	// The first start creates the database's tables: tens of seconds on
	// a busy two-core machine.
	deadline := time.Now().Add(3 * time.Minute)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(m.URL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				go func() { <-exited }()
				return
			}
		}
		select {
		case err := <-exited:
			m.mu.Lock()
			m.cmd = nil
			m.mu.Unlock()
			m.t.Fatalf("MLflow exited before answering: %v\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.Kill()
			m.t.Fatalf("MLflow did not answer %s/health within 3 minutes:\n%s", m.URL, out.String())
		}
	}
}

// Kill ends the server and every process it started at once (SIGKILL to
// its process group), as a crash would; Start brings it back.
func (m *MLflow) Kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	if err := syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		m.t.Errorf("killing MLflow: %v", err)
	}
	// Wait for the port to be free, so a test sees the server gone.
	client := &http.Client{Timeout: time.Second}
	for i := 0; i < 100; i++ {
		resp, err := client.Get(m.URL + "/health")
		if err != nil {
			break
		}
		resp.Body.Close()
		time.Sleep(20 * time.Millisecond)
	}
	m.cmd = nil
}

// Output is what the server printed since its last start.
func (m *MLflow) Output() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.out == nil {
		return ""
	}
	return m.out.String()
}
