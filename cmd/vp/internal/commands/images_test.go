package commands

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vision-platform/vp/local/ociregistry"
)

// TestInt_ImagesCLI builds an image from a spec with vp images build,
// pushes it to the embedded registry, lists and inspects it, and loads the
// tar output into the Docker Engine and runs it there.
func TestInt_ImagesCLI(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	module := filepath.Join(wd, "..", "..", "..", "..")
	os.MkdirAll(filepath.Join(dir, "specs"), 0o755)
	os.MkdirAll(filepath.Join(dir, "files"), 0o755)
	os.WriteFile(filepath.Join(dir, "files", "motd"), []byte("hi\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "specs", "hello.yaml"), []byte(fmt.Sprintf(`name: hello
base: {scratch: true}
entrypoint: [/hello]
layers:
  - name: binary
    go: {package: ./images/build/testdata/hello, dest: /hello, dir: %s}
  - name: motd
    file: {src: ../files/motd, dest: /etc/motd}
`, module)), 0o644)
	os.WriteFile(filepath.Join(dir, "specs", "hello2.yaml"), []byte("name: hello2\nbase: {spec: hello}\nlabels: {stage: two}\n"), 0o644)
	reg, err := ociregistry.New(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	common := []string{"--specs", filepath.Join(dir, "specs"), "--cache", filepath.Join(dir, "cache")}
	tarFile := filepath.Join(dir, "hello.tar")
	out, err := run(context.Background(), "", append([]string{"images", "build", "hello", "--registry", host + "/vp", "--output", "tar:" + tarFile, "--tag", "vp-test/hello:ci"}, common...)...)
	if err != nil {
		t.Fatalf("vp images build: %v\n%s", err, out)
	}
	if !strings.Contains(out, "pushed "+host+"/vp/hello@sha256:") || !strings.Contains(out, "built") {
		t.Errorf("build output lacks the push or the progress:\n%s", out)
	}
	out, err = run(context.Background(), "", append([]string{"images", "build", "hello2", "--registry", host + "/vp"}, common...)...)
	if err != nil {
		t.Fatalf("vp images build hello2: %v\n%s", err, out)
	}
	if !strings.Contains(out, "0 B pushed") && !strings.Contains(out, "B pushed,") {
		t.Errorf("second build output:\n%s", out)
	}
	out, err = run(context.Background(), "", append([]string{"images", "ls"}, common...)...)
	if err != nil || !strings.Contains(out, "hello2") || !strings.Contains(out, "sha256:") {
		t.Errorf("vp images ls: %v\n%s", err, out)
	}
	out, err = run(context.Background(), "", append([]string{"images", "inspect", "hello2"}, common...)...)
	if err != nil || !strings.Contains(out, "binary") || !strings.Contains(out, "hello") || !strings.Contains(out, "shared with other images") {
		t.Errorf("vp images inspect: %v\n%s", err, out)
	}
	if _, err := run(context.Background(), "", append([]string{"images", "inspect", "nope"}, common...)...); err == nil {
		t.Error("inspecting an image never built succeeded")
	}
	// docker load and run what we built, with no Dockerfile in sight.
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatalf("docker is not installed: %v", err)
	}
	if msg, err := exec.Command("docker", "load", "-i", tarFile).CombinedOutput(); err != nil {
		t.Fatalf("docker load: %v\n%s", err, msg)
	}
	defer exec.Command("docker", "rmi", "-f", "vp-test/hello:ci").Run()
	got, err := exec.Command("docker", "run", "--rm", "vp-test/hello:ci").CombinedOutput()
	if err != nil || string(got) != "hello from the image\n" {
		t.Errorf("docker run: %v, %q", err, got)
	}
}
