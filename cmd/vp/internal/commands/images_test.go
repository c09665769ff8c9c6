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

	"github.com/vision-platform/vp/images/wheel"
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

// TestInt_ImagesLock resolves a spec's requirements with vp images lock
// (pip's resolver over a wheel directory), then builds the spec from the
// lock it wrote.
func TestInt_ImagesLock(t *testing.T) {
	dir := t.TempDir()
	house := filepath.Join(dir, "wheelhouse")
	os.MkdirAll(house, 0o755)
	for _, d := range []struct{ name, version, requires string }{
		{"torch", "2.5.1", ""},
		{"torchvision", "0.20.1", "Requires-Dist: torch==2.5.1\n"},
		{"other", "1.0", ""},
	} {
		meta := fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n%s", d.name, d.version, d.requires)
		if _, _, err := wheel.Make(house, d.name, d.version, map[string][]byte{
			d.name + "/__init__.py":                          []byte("# " + d.name + "\n"),
			d.name + "-" + d.version + ".dist-info/METADATA": []byte(meta),
		}, nil); err != nil {
			t.Fatal(err)
		}
	}
	specs := filepath.Join(dir, "specs")
	os.MkdirAll(filepath.Join(specs, "requirements"), 0o755)
	os.WriteFile(filepath.Join(specs, "requirements", "tv.in"), []byte("torchvision\n"), 0o644)
	os.WriteFile(filepath.Join(specs, "tv.yaml"), []byte(`name: tv
base: {scratch: true}
layers:
  - name: wheels
    wheels: {requirements: requirements/tv.in, lock: locks/tv.lock, wheelhouse: ../wheelhouse,
             sitePackages: /opt/vp/site-packages, scripts: /opt/vp/bin}
`), 0o644)
	common := []string{"--specs", specs, "--cache", filepath.Join(dir, "cache")}
	out, err := run(context.Background(), "", append([]string{"images", "lock", "tv", "--find-links", house}, common...)...)
	if err != nil {
		t.Fatalf("vp images lock: %v\n%s", err, out)
	}
	if !strings.Contains(out, "2 wheels pinned") {
		t.Errorf("vp images lock said:\n%s", out)
	}
	reqs, err := wheel.ParseLock(filepath.Join(specs, "locks", "tv.lock"))
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 || reqs[0].Name != "torch" || reqs[1].Name != "torchvision" || reqs[1].Version != "0.20.1" {
		t.Errorf("lock pins %+v", reqs)
	}
	out, err = run(context.Background(), "", append([]string{"images", "build", "tv", "--quiet"}, common...)...)
	if err != nil {
		t.Fatalf("vp images build from the lock: %v\n%s", err, out)
	}
	out, err = run(context.Background(), "", append([]string{"images", "lock", "nosuch"}, common...)...)
	if err == nil || !strings.Contains(err.Error(), `no spec named "nosuch"`) {
		t.Errorf("vp images lock nosuch = %v\n%s", err, out)
	}
}
