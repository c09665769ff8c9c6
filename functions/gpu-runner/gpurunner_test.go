package gpurunner_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/functions/funcyaml"
	gpurunner "github.com/vision-platform/vp/functions/gpu-runner"
	"github.com/vision-platform/vp/functions/gpu-runner/executor"
	"github.com/vision-platform/vp/internal/dockerapi/dockerapitest"
	"github.com/vision-platform/vp/internal/testsupport"
)

func parseFuncYAML(t *testing.T) *funcyaml.Function {
	t.Helper()
	f, err := funcyaml.Parse("func.yaml", gpurunner.FuncYAML)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFuncYAML(t *testing.T) {
	f := parseFuncYAML(t)
	var types []string
	for _, s := range f.Deploy.Subscriptions {
		types = append(types, s.Filters["type"])
	}
	want := []string{string(events.ImageBuilt), string(events.JobCancelled)}
	if f.Name != "gpu-runner" || f.Invoke != funcyaml.InvokeCloudEvent || !cmp.Equal(types, want) {
		t.Errorf("func.yaml: name %q, invoke %q, subscriptions to %v; want gpu-runner, cloudevent, %v", f.Name, f.Invoke, types, want)
	}
	for _, name := range []string{"VP_S3_ENDPOINT", "VP_S3_ACCESS_KEY", "VP_S3_SECRET_KEY", "K_SINK", "VP_EXECUTOR"} {
		if _, ok := f.Env(name); !ok {
			t.Errorf("func.yaml does not set %s", name)
		}
	}
}

func TestRunID(t *testing.T) {
	for _, c := range []struct {
		job, want string
	}{
		{"job-0123456789abcdef0123", "run-0123456789abcdef0123"},
		{"job-ffffffffffffffffffff", "run-ffffffffffffffffffff"},
	} {
		if got, err := gpurunner.RunID(c.job); got != c.want || err != nil {
			t.Errorf("RunID(%q) = %q, %v; want %q", c.job, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "job-", "run-0123456789abcdef0123", "job-0123456789abcdef012", "job-0123456789abcdef01234", "job-0123456789ABCDEF0123", "job-0123456789abcdefg123", "JOB-0123456789abcdef0123"} {
		if got, err := gpurunner.RunID(bad); !errors.Is(err, gpurunner.ErrNotAJob) {
			t.Errorf("RunID(%q) = %q, %v; want ErrNotAJob", bad, got, err)
		}
	}
}

// script writes an executable shell script.
func script(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAgentCommand(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	onPath := filepath.Join(bin, gpurunner.AgentBinary)
	if err := os.WriteFile(onPath, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	custom := script(t, "my-agent", "")
	empty := t.TempDir()
	for _, c := range []struct {
		desc     string
		path     string // PATH
		setting  string
		self     bool
		wantCmd  string
		wantArgs []string
		wantErr  string
	}{
		{"vp-agent on PATH", bin, "", false, onPath, nil, ""},
		{"vp-agent on PATH wins over self", bin, "", true, onPath, nil, ""},
		{"none on PATH, the binary has the subcommand", empty, "", true, self, []string{"agent"}, ""},
		{"none on PATH, no subcommand", empty, "", false, "", nil, "vp-agent is not on PATH"},
		{"self", bin, "self", false, self, []string{"agent"}, ""},
		{"a path", empty, custom, false, custom, nil, ""},
		{"a path and arguments", empty, custom + "  agent --quiet ", false, custom, []string{"agent", "--quiet"}, ""},
		{"blanks", bin, "  ", false, "", nil, "names no command"},
		{"a name on PATH", bin, gpurunner.AgentBinary, false, onPath, nil, ""},
		{"a missing path", bin, filepath.Join(empty, "nope"), false, "", nil, "VP_AGENT"},
	} {
		t.Run(c.desc, func(t *testing.T) {
			t.Setenv("PATH", c.path)
			cmd, args, err := gpurunner.AgentCommand(c.setting, c.self)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Errorf("AgentCommand(%q, %v) = %q %q, %v; want an error saying %q", c.setting, c.self, cmd, args, err, c.wantErr)
				}
				return
			}
			if err != nil || cmd != c.wantCmd || !cmp.Equal(args, c.wantArgs) {
				t.Errorf("AgentCommand(%q, %v) = %q %q, %v; want %q %q", c.setting, c.self, cmd, args, err, c.wantCmd, c.wantArgs)
			}
		})
	}
}

// baseConfig is a configuration that starts: a store and a sink that need
// not answer (Start connects to neither), the process executor with a
// stand-in agent.
func baseConfig(t *testing.T) map[string]string {
	return map[string]string{
		"VP_S3_ENDPOINT": testsupport.FreeAddr(t), "VP_S3_ACCESS_KEY": "k", "VP_S3_SECRET_KEY": "s",
		"K_SINK": "http://" + testsupport.FreeAddr(t) + "/default/default", "VP_EXECUTOR": "process",
		"VP_AGENT": script(t, "agent", "exit 0\n"), "VP_WORK_DIR": t.TempDir(),
	}
}

func TestStartSettings(t *testing.T) {
	for _, c := range []struct {
		desc string
		set  map[string]string
		want string // in the error
	}{
		{"no store", map[string]string{"VP_S3_ENDPOINT": ""}, "VP_S3_ENDPOINT"},
		{"no sink", map[string]string{"K_SINK": ""}, "K_SINK"},
		{"a bad sink", map[string]string{"K_SINK": "::not a url"}, "K_SINK"},
		{"unknown executor", map[string]string{"VP_EXECUTOR": "slurm"}, "VP_EXECUTOR"},
		{"docker without an engine", map[string]string{"VP_EXECUTOR": "docker", "DOCKER_HOST": "unix://" + filepath.Join(t.TempDir(), "docker.sock")}, "no Docker Engine answers"},
		{"docker pull hosts", map[string]string{"VP_EXECUTOR": "docker", "VP_DOCKER_PULL_HOSTS": "registry:5000"}, "VP_DOCKER_PULL_HOSTS"},
		{"kubernetes in a binary without it", map[string]string{"VP_EXECUTOR": "kubernetes"}, "no kubernetes executor"},
		{"no agent", map[string]string{"VP_AGENT": filepath.Join(t.TempDir(), "vp-agent")}, "VP_AGENT"},
		{"max runs not a number", map[string]string{"VP_MAX_RUNS": "many"}, "VP_MAX_RUNS"},
		{"max runs zero", map[string]string{"VP_MAX_RUNS": "0"}, "VP_MAX_RUNS"},
		{"runs bucket", map[string]string{"VP_RUNS_BUCKET": "Runs_Bucket"}, "VP_RUNS_BUCKET"},
		{"ledger bucket", map[string]string{"VP_LEDGER_BUCKET": "a/b"}, "VP_LEDGER_BUCKET"},
		{"log format", map[string]string{"VP_LOG_FORMAT": "xml"}, "VP_LOG_FORMAT"},
	} {
		t.Run(c.desc, func(t *testing.T) {
			cfg := baseConfig(t)
			for k, v := range c.set {
				cfg[k] = v
			}
			var opts []gpurunner.Option
			if c.set["VP_LOG_FORMAT"] == "" {
				opts = append(opts, gpurunner.WithLogger(zerolog.Nop()))
			}
			err := gpurunner.New(opts...).Start(context.Background(), cfg)
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Start() with %v = %v, want an error naming %s", c.set, err, c.want)
			}
		})
	}
}

// TestStartProcessExecutor: the process executor as the settings describe
// it.
func TestStartProcessExecutor(t *testing.T) {
	cfg := baseConfig(t)
	cfg["VP_MAX_RUNS"] = "3"
	cfg["VP_PYTHON"] = "/usr/bin/python3"
	cfg["VP_AGENT"] = "self"
	f := gpurunner.New(gpurunner.WithLogger(zerolog.Nop()))
	if ready, _ := f.Ready(context.Background()); ready {
		t.Error("Ready before Start")
	}
	if err := f.Start(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	p, ok := f.Executor().(*executor.ProcessExecutor)
	if !ok {
		t.Fatalf("executor = %T, want the process executor", f.Executor())
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	got := struct {
		Agent, WorkDir, Reason string
		Args, Env              []string
		Slots                  int
	}{p.Agent, p.WorkDir, f.Reason(), p.AgentArgs, p.Env, p.Slots}
	want := got
	want.Agent, want.Args, want.WorkDir, want.Slots, want.Env, want.Reason = self, []string{"agent"}, cfg["VP_WORK_DIR"], 3, []string{"VP_PYTHON=/usr/bin/python3"}, "asked for"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("process executor (-want +got):\n%s", diff)
	}
	if ready, _ := f.Ready(context.Background()); !ready {
		t.Error("not Ready after Start")
	}
}

// TestStartAuto: auto without a cluster or a Docker Engine runs processes,
// and says why.
func TestStartAuto(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	cfg := baseConfig(t)
	cfg["VP_EXECUTOR"] = ""
	cfg["DOCKER_HOST"] = "unix://" + filepath.Join(t.TempDir(), "docker.sock")
	f := gpurunner.New(gpurunner.WithLogger(zerolog.Nop()))
	if err := f.Start(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if name, reason := f.Executor().Name(), f.Reason(); name != executor.Process || reason != "no cluster and no Docker Engine" {
		t.Errorf("auto chose %s (%q), want process (no cluster and no Docker Engine)", name, reason)
	}
}

// TestStartDockerExecutor: the docker executor as the settings describe
// it, as docker-compose sets them (a stand-in engine answers at
// DOCKER_HOST).
func TestStartDockerExecutor(t *testing.T) {
	e := dockerapitest.New(t)
	cfg := baseConfig(t)
	cfg["VP_EXECUTOR"] = "docker"
	cfg["DOCKER_HOST"] = e.Host
	cfg["VP_DOCKER_NETWORK"] = "vp_platform"
	cfg["VP_DOCKER_PULL_HOSTS"] = "registry:5000=127.0.0.1:5000"
	cfg["VP_DOCKER_GPUS"] = "0, 1"
	f := gpurunner.New(gpurunner.WithLogger(zerolog.Nop()))
	if err := f.Start(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	d, ok := f.Executor().(*executor.DockerExecutor)
	if !ok {
		t.Fatalf("executor = %T, want the docker executor", f.Executor())
	}
	got := struct {
		Host, Network string
		PullHosts     map[string]string
		Devices       []string
	}{d.Host, d.Network, d.PullHosts, d.Devices}
	want := got
	want.Host, want.Network, want.PullHosts, want.Devices = e.Host, "vp_platform", map[string]string{"registry:5000": "127.0.0.1:5000"}, []string{"0", "1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("docker executor (-want +got):\n%s", diff)
	}
}

// TestHandleBeforeStart: a function not started asks for a redelivery.
func TestHandleBeforeStart(t *testing.T) {
	e, err := events.New(context.Background(), "/test", events.JobCancelledData{Job: "job-0123456789abcdef0123"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gpurunner.New().Handle(context.Background(), e); fn.StatusOf(err) != http.StatusServiceUnavailable {
		t.Errorf("Handle before Start = %v, want 503", err)
	}
}

// serve serves f over HTTP as func-go does.
func serve(t *testing.T, f *gpurunner.Function) string {
	t.Helper()
	h, err := fn.Handler(f)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// post delivers e as the broker does and returns the answer's status and
// the event it carries, if any.
func post(t *testing.T, url string, e event.Event) (int, *event.Event) {
	t.Helper()
	status, reply, _ := testsupport.Deliver(t, url, e)
	return status, reply
}
