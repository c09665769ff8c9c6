package dockerapi_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/internal/dockerapi"
	"github.com/vision-platform/vp/internal/dockerapi/dockerapitest"
	"github.com/vision-platform/vp/internal/testsupport"
)

// TestStandInEngine: the client's requests and its reading of the
// answers, against the stand-in engine: the negotiated version in the
// paths, the JSON bodies, an error in a pull's stream, the engine's
// errors as ErrNotFound and ErrConflict.
func TestStandInEngine(t *testing.T) {
	e := dockerapitest.New(t)
	e.APIVersion = "1.52"
	c, err := dockerapi.New(e.Host)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if v, err := c.Version(ctx); err != nil || v != dockerapi.NewestAPI {
		t.Fatalf("Version() = %q, %v; want %s", v, err, dockerapi.NewestAPI)
	}
	ref := "127.0.0.1:5000/vp/x@sha256:" + strings.Repeat("b", 64)
	if ok, err := c.ImageExists(ctx, ref); ok || err != nil {
		t.Errorf("ImageExists(absent) = %v, %v", ok, err)
	}
	if err := c.Pull(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.ImageExists(ctx, ref); !ok || err != nil {
		t.Errorf("ImageExists(pulled) = %v, %v", ok, err)
	}
	cfg := dockerapi.ContainerConfig{Image: ref, Env: []string{"A=1"}, Labels: map[string]string{"k": "v"},
		HostConfig: dockerapi.HostConfig{NetworkMode: "vp_default", NanoCPUs: 1_500_000_000, Memory: 1 << 29,
			DeviceRequests: []dockerapi.DeviceRequest{{DeviceIDs: []string{"1"}, Capabilities: [][]string{{"gpu"}}}}}}
	id, err := c.Create(ctx, "one", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, "one", cfg); !errors.Is(err, dockerapi.ErrConflict) {
		t.Errorf("Create(a name in use) = %v, want ErrConflict", err)
	}
	if err := c.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.Write("one", 1, "out\n")
	e.Write("one", 2, "err\n")
	if logs, err := c.Logs(ctx, "one"); err != nil || logs != "out\nerr\n" {
		t.Errorf("Logs = %q, %v", logs, err)
	}
	list, err := c.List(ctx, false, dockerapi.Filters{"label": {"k=v"}})
	if err != nil || len(list) != 1 || list[0].ID != id || list[0].State != "running" {
		t.Errorf("List(k=v) = %+v, %v; want the running container", list, err)
	}
	if err := c.Kill(ctx, id, "SIGTERM"); err != nil {
		t.Fatal(err)
	}
	if code, err := c.Wait(ctx, id); code != 143 || err != nil {
		t.Errorf("Wait = %d, %v; want 143", code, err)
	}
	if err := c.Kill(ctx, id, "SIGTERM"); !errors.Is(err, dockerapi.ErrConflict) {
		t.Errorf("Kill(an ended container) = %v, want ErrConflict", err)
	}
	if err := c.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	var ae *dockerapi.Error
	if _, err := c.Inspect(ctx, id); !errors.Is(err, dockerapi.ErrNotFound) || !errors.As(err, &ae) || !strings.Contains(ae.Message, "No such container") {
		t.Errorf("Inspect(removed) = %v, want ErrNotFound with the engine's message", err)
	}
	var paths []string
	for _, r := range e.Requests() {
		paths = append(paths, r.Method+" "+r.Path)
	}
	if diff := cmp.Diff([]string{"GET /_ping", "GET /images/" + ref + "/json", "POST /images/create"}, paths[:3]); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	for _, r := range e.Requests() {
		if r.Path == "/images/create" && (r.Query.Get("fromImage") != "127.0.0.1:5000/vp/x" || r.Query.Get("tag") != "sha256:"+strings.Repeat("b", 64)) {
			t.Errorf("pull query = %v, want the repository and the digest", r.Query)
		}
		if r.Path == "/containers/create" && !strings.Contains(string(r.Body), `"DeviceRequests":[{"Driver":"","Count":0,"DeviceIDs":["1"],"Capabilities":[["gpu"]],"Options":null}]`) {
			t.Errorf("create body = %s, want the device request", r.Body)
		}
	}

	e.PullError = "manifest unknown"
	err = c.Pull(ctx, "127.0.0.1:5000/vp/y:latest")
	if !errors.Is(err, dockerapi.ErrPull) || !strings.Contains(err.Error(), "manifest unknown") {
		t.Errorf("Pull with an error in the stream = %v, want ErrPull saying manifest unknown", err)
	}
}

func TestOldEngine(t *testing.T) {
	e := dockerapitest.New(t)
	e.APIVersion = "1.39"
	c, err := dockerapi.New(e.Host)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(context.Background(), true, nil); !errors.Is(err, dockerapi.ErrOldEngine) {
		t.Errorf("List on an engine of API 1.39 = %v, want ErrOldEngine", err)
	}
}

// realEngine is a client of the engine DOCKER_HOST names (the default
// socket when unset); the test skips, saying why, when none answers.
func realEngine(t *testing.T) *dockerapi.Client {
	t.Helper()
	c, err := dockerapi.New(os.Getenv("DOCKER_HOST"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Version(ctx); err != nil {
		t.Skipf("no Docker Engine answers: %v (%s)", err, testsupport.DockerEngineWhere)
	}
	return c
}

// TestInt_Engine asks the host's Docker Engine what needs no image: the
// version, lists, a pull that fails, a network.
func TestInt_Engine(t *testing.T) {
	testsupport.Integration(t)
	c := realEngine(t)
	ctx := context.Background()
	v, err := c.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("speaking Engine API %s to %s", v, c.Host())
	if _, err := c.List(ctx, true, dockerapi.Filters{"label": {"dev.visionplatform.test=none"}}); err != nil {
		t.Errorf("List = %v", err)
	}
	absent := testsupport.FreeAddr(t) + "/vp/absent:latest"
	if ok, err := c.ImageExists(ctx, absent); ok || err != nil {
		t.Errorf("ImageExists(%s) = %v, %v; want false", absent, ok, err)
	}
	if err := c.Pull(ctx, absent); err == nil {
		t.Errorf("Pull(%s) from a port nothing listens on succeeded", absent)
	}
	if _, err := c.Inspect(ctx, "vp-no-such-container"); !errors.Is(err, dockerapi.ErrNotFound) {
		t.Errorf("Inspect(absent) = %v, want ErrNotFound", err)
	}
	name := fmt.Sprintf("vp-test-%d", time.Now().UnixNano())
	if _, err := c.CreateNetwork(ctx, name); err != nil {
		t.Fatal(err)
	}
	gw, err := c.NetworkGateway(ctx, name)
	if err != nil || gw == "" {
		t.Errorf("NetworkGateway = %q, %v", gw, err)
	}
	if err := c.RemoveNetwork(ctx, name); err != nil {
		t.Error(err)
	}
	if err := c.RemoveNetwork(ctx, name); !errors.Is(err, dockerapi.ErrNotFound) {
		t.Errorf("RemoveNetwork(removed) = %v, want ErrNotFound", err)
	}
}
