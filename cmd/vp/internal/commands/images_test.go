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
	"github.com/vision-platform/vp/images/wheel/wheeltest"
	"github.com/vision-platform/vp/internal/testsupport"
	"github.com/vision-platform/vp/local/ociregistry"
)

func writeFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestInt_ImagesCLI builds an image from a spec with vp images build,
// pushes it to the embedded registry, lists and inspects it, and loads the
// tar output into the Docker Engine and runs it there.
func TestInt_ImagesCLI(t *testing.T) {
	testsupport.Integration(t)
	dir := t.TempDir()
	module := testsupport.ModuleRoot(t)
	writeFile(t, filepath.Join(dir, "files", "motd"), "hi\n")
	writeFile(t, filepath.Join(dir, "specs", "hello.yaml"), fmt.Sprintf(`name: hello
base: {scratch: true}
entrypoint: [/hello]
layers:
  - name: binary
    go: {package: ./images/assemble/testdata/hello, dest: /hello, dir: %s}
  - name: motd
    file: {src: ../files/motd, dest: /etc/motd}
`, module))
	writeFile(t, filepath.Join(dir, "specs", "hello2.yaml"), "name: hello2\nbase: {spec: hello}\nlabels: {stage: two}\n")
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
	if missing := testsupport.InOrder(out, "binary", "built", "hello\tsha256:", "pushed "+host+"/vp/hello@sha256:"); missing != "" {
		t.Errorf("build output lacks %q (the progress, the digest, the push):\n%s", missing, out)
	}
	out, err = run(context.Background(), "", append([]string{"images", "build", "hello2", "--registry", host + "/vp"}, common...)...)
	if err != nil {
		t.Fatalf("vp images build hello2: %v\n%s", err, out)
	}
	if !strings.Contains(out, "cached") || !strings.Contains(out, "B pushed, ") {
		t.Errorf("second build output lacks the cached layers or the push:\n%s", out)
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
	if msg, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		t.Skipf("no Docker Engine answers (%v): the tar output is not loaded (%s)\n%s", err, testsupport.DockerEngineWhere, msg)
	}
	if msg, err := exec.Command("docker", "load", "-i", tarFile).CombinedOutput(); err != nil {
		t.Fatalf("docker load: %v\n%s", err, msg)
	}
	t.Cleanup(func() {
		if msg, err := exec.Command("docker", "rmi", "-f", "vp-test/hello:ci").CombinedOutput(); err != nil {
			t.Errorf("docker rmi: %v\n%s", err, msg)
		}
	})
	got, err := exec.Command("docker", "run", "--rm", "vp-test/hello:ci").CombinedOutput()
	if err != nil || string(got) != "hello from the image\n" {
		t.Errorf("docker run: %v, %q", err, got)
	}
}

// TestImagesBuildFlagErrors: the builder's errors about its options come
// back naming the flag that set them.
func TestImagesBuildFlagErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "specs", "a.yaml"), "name: a\nbase: {scratch: true}\nlayers:\n  - name: f\n    file: {src: ../f, dest: /f}\n")
	writeFile(t, filepath.Join(dir, "specs", "b.yaml"), "name: b\nbase: {scratch: true}\nlayers:\n  - name: f\n    file: {src: ../f, dest: /f}\n")
	writeFile(t, filepath.Join(dir, "f"), "x")
	common := []string{"--specs", filepath.Join(dir, "specs"), "--cache", filepath.Join(dir, "cache"), "--quiet"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"a", "--output", "zip:x"}, `--output "zip:x": want oci:DIR or tar:FILE`},
		{[]string{"a", "--registry", "Not A Repo!"}, `--registry "Not A Repo!"`},
		{[]string{"a", "--output", "tar:" + filepath.Join(dir, "a.tar"), "--tag", "Bad Tag"}, `--tag "Bad Tag"`},
		{[]string{"a", "--tag", "vp/a:x"}, `--tag "vp/a:x": only for a tar output`},
		{[]string{"--output", "tar:" + filepath.Join(dir, "all.tar")}, "--output tar: takes one image, got 2"},
	} {
		out, err := run(context.Background(), "", append(append([]string{"images", "build"}, c.args...), common...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("vp images build %s = %v, want an error containing %q\n%s", strings.Join(c.args, " "), err, c.want, out)
		}
	}
}

// TestInt_ImagesLock resolves a spec's requirements with vp images lock
// (pip's resolver over a wheel directory), then builds the spec from the
// lock it wrote.
func TestInt_ImagesLock(t *testing.T) {
	testsupport.Integration(t)
	dir := t.TempDir()
	house := filepath.Join(dir, "wheelhouse")
	if err := os.MkdirAll(house, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct{ name, version, requires string }{
		{"torch", "2.5.1", ""},
		{"torchvision", "0.20.1", "Requires-Dist: torch==2.5.1\n"},
		{"other", "1.0", ""},
	} {
		meta := fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n%s", d.name, d.version, d.requires)
		if _, _, err := wheeltest.Make(house, d.name, d.version, map[string][]byte{
			d.name + "/__init__.py":                          []byte("# " + d.name + "\n"),
			d.name + "-" + d.version + ".dist-info/METADATA": []byte(meta),
		}, nil); err != nil {
			t.Fatal(err)
		}
	}
	specs := filepath.Join(dir, "specs")
	writeFile(t, filepath.Join(specs, "requirements", "tv.in"), "torchvision\n")
	writeFile(t, filepath.Join(specs, "tv.yaml"), `name: tv
base: {scratch: true}
layers:
  - name: wheels
    wheels: {requirements: requirements/tv.in, lock: locks/tv.lock, wheelhouse: ../wheelhouse,
             sitePackages: /opt/vp/site-packages, scripts: /opt/vp/bin}
`)
	common := []string{"--specs", specs, "--cache", filepath.Join(dir, "cache")}
	out, err := run(context.Background(), "", append([]string{"images", "lock", "tv", "--find-links", house}, common...)...)
	if err != nil {
		t.Fatalf("vp images lock: %v\n%s", err, out)
	}
	if !strings.Contains(out, "tv: resolving requirements/tv.in for python 3.11 on manylinux_2_36_x86_64") || !strings.Contains(out, "2 wheels pinned") {
		t.Errorf("vp images lock said:\n%s", out)
	}
	lock := filepath.Join(specs, "locks", "tv.lock")
	if fi, err := os.Stat(lock); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("lock file: %v, %v; want mode 0644", fi, err)
	}
	reqs, err := wheel.ParseLock(lock)
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
	if err == nil || !strings.Contains(err.Error(), `no spec named "nosuch" in `+specs) {
		t.Errorf("vp images lock nosuch = %v\n%s", err, out)
	}
}
