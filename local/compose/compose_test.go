package compose

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"gopkg.in/yaml.v3"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/gpu-runner/executor"
	"github.com/vision-platform/vp/images/assemble"
	"github.com/vision-platform/vp/images/imagespec"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
)

// functions are the function images the compose file runs.
var functions = []string{"dataset-intake", "dead-letter", "gateway", "gpu-runner", "image-builder", "job-trigger", "mlflow-sync", "run-recorder"}

// TestComposeFile: every function has its service, from an image built
// here (localhost/vp, never a registry's), with a healthcheck and a
// restart policy; ports are published on loopback only; MinIO's webhook
// reaches dataset-intake by service name; and the compose command here
// reads the file.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Build       any               `yaml:"build"`
			Restart     string            `yaml:"restart"`
			Healthcheck map[string]any    `yaml:"healthcheck"`
			Ports       []string          `yaml:"ports"`
			Environment map[string]string `yaml:"environment"`
			Profiles    []string          `yaml:"profiles"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for _, fn := range functions {
		if _, ok := f.Services[fn]; !ok {
			t.Errorf("no service runs %s", fn)
		}
	}
	for name, s := range f.Services {
		if s.Build != nil || !(strings.HasPrefix(s.Image, "${VP_IMAGE_PREFIX:-localhost/vp}/") || s.Image == "${MINIO_IMAGE:-localhost/vp/minio:latest}") {
			t.Errorf("service %s: image %q build %v, want one of localhost/vp (built here, docker load)", name, s.Image, s.Build)
		}
		if name == "minio-init" {
			continue
		}
		if s.Restart != "unless-stopped" || len(s.Healthcheck) == 0 {
			t.Errorf("service %s: restart %q, healthcheck %v; want unless-stopped and one", name, s.Restart, s.Healthcheck)
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %s beyond loopback", name, p)
			}
		}
	}
	if got := f.Services["minio"].Environment["MINIO_NOTIFY_WEBHOOK_ENDPOINT_VP"]; got != "http://dataset-intake:8080/" {
		t.Errorf("MinIO's webhook = %q, want dataset-intake by service name", got)
	}
	if !slices.Equal(f.Services["mlflow-sync"].Profiles, []string{"mlflow"}) {
		t.Errorf("mlflow-sync profiles = %v, want [mlflow]", f.Services["mlflow-sync"].Profiles)
	}
	cmd, err := Command(context.Background())
	if err != nil {
		t.Logf("the file is not read by a compose command here: %v", err)
		return
	}
	p := NewProject(cmd, testsupport.ModuleRoot(t), "vpconfig", nil)
	for _, args := range [][]string{{"config", "--quiet"}, {"--profile", "mlflow", "config", "--quiet"}} {
		if out, err := p.Run(context.Background(), args...); err != nil {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
}

// TestInt_Compose: the platform under docker-compose (or the docker
// compose plugin), on a project of its own with free ports: a dataset put
// in its MinIO with minio-go trains a model (the docker executor, a sibling
// container on the project's network) to run.finished succeeded with its
// artifacts in MinIO; the broker's container restarted while the run
// trains loses no event; and down -v leaves no container, volume or
// network of the project.
func TestInt_Compose(t *testing.T) {
	testsupport.Integration(t)
	ctx := context.Background()
	if err := Engine(ctx); err != nil {
		t.Skipf("%v: the compose test runs the platform's containers (%s)", err, testsupport.DockerEngineWhere)
	}
	command, err := Command(ctx)
	if err != nil {
		t.Skipf("%v: no compose command (the go-docker kind has Debian's docker-compose; make deps installs it on the polyglot kind with the engine)", err)
	}
	root := testsupport.ModuleRoot(t)
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(home, ".cache", "vision-platform")
	rootfs := filepath.Join(cache, "rootfs")
	if _, err := os.Stat(filepath.Join(rootfs, "bookworm-python3-torch.tar")); err != nil {
		t.Fatalf("the torchvision-cpu image's root filesystem is missing (%v): run make deps", err)
	}
	const prefix = "localhost/vp-test"
	loadImages(t, root, cache, prefix)

	name := "vpe2e" + randomHex(t, 4)
	port := func() string {
		_, p, err := net.SplitHostPort(testsupport.FreeAddr(t))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	minioPort, gatewayPort := port(), port()
	creds := Credentials{MinIOUser: "vp-e2e", MinIOPassword: "vp-e2e-" + randomHex(t, 8), IntakeToken: randomHex(t, 8), GatewayToken: randomHex(t, 8)}
	env := NewEnv(creds, rootfs, goEnv(t, "GOROOT"), goEnv(t, "GOMODCACHE"))
	for k, v := range map[string]string{
		"VP_BROKER_PORT": port(), "VP_REGISTRY_PORT": port(), "VP_MINIO_PORT": minioPort, "VP_GATEWAY_PORT": gatewayPort,
		"VP_IMAGE_PREFIX": prefix, "MINIO_IMAGE": prefix + "/minio:latest",
		// Kept across runs of this test (its layer cache and Go build
		// cache): only the first run builds torchvision-cpu cold.
		"VP_IMAGE_CACHE": filepath.Join(cache, "compose-test", "images"),
		"VP_GOCACHE":     filepath.Join(cache, "compose-test", "go-build"),
	} {
		env[k] = v
	}
	p := NewProject(command, root, name, env)
	var runID string
	t.Cleanup(func() {
		if runID != "" { // a training container left behind: the engine's, not the project's
			_ = exec.Command("docker", "rm", "--force", executor.ContainerName(runID)).Run()
		}
		if t.Failed() {
			if out, err := p.Run(context.Background(), "logs", "--no-color", "--tail", "60"); err == nil {
				t.Logf("logs of %s:\n%s", name, out)
			}
		}
		if out, err := p.Run(context.Background(), "down", "--volumes", "--remove-orphans", "--timeout", "10"); err != nil {
			t.Errorf("down -v: %v\n%s", err, out)
		}
	})
	start := time.Now()
	if out, err := p.Run(ctx, "up", "-d"); err != nil {
		t.Fatalf("up -d: %v\n%s", err, out)
	}
	testsupport.WaitHTTP(t, "http://127.0.0.1:"+gatewayPort+"/health/readiness", 2*time.Minute)
	mc, err := miniogo.New("127.0.0.1:"+minioPort, &miniogo.Options{Creds: credentials.NewStaticV4(creds.MinIOUser, creds.MinIOPassword, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 2*time.Minute, "minio-init to point the datasets bucket at dataset-intake", func() bool {
		cfg, err := mc.GetBucketNotification(ctx, "datasets")
		return err == nil && len(cfg.QueueConfigs) > 0
	})
	t.Logf("up -d to the platform ready: %s", time.Since(start).Round(100*time.Millisecond))

	// A dataset put in MinIO trains, long enough to restart the broker
	// while it does.
	const epochs = 8
	data := t.TempDir()
	testsupport.MakeImageFolder(t, data, 8, 32)
	seed := time.Now().UnixNano() % 1000000
	manifest := fmt.Sprintf("name: cats\ntask: classification\nformat: imagefolder\ntrain:\n  model: torchvision/resnet18\n"+
		"  hyperparameters: {epochs: %d, batchSize: 8, learningRate: 0.01, imageSize: 32, seed: %d}\n  resources: {gpus: 0}\n", epochs, seed)
	err = filepath.Walk(data, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(data, path)
		_, err = mc.FPutObject(ctx, "datasets", "cats/"+filepath.ToSlash(rel), path, miniogo.PutObjectOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mc.PutObject(ctx, "datasets", "cats/dataset.yaml", strings.NewReader(manifest), int64(len(manifest)), miniogo.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	uploaded := time.Now()
	led := ledger.New(objstore.FromMinIO(mc), ledger.DefaultBucket)
	var jobID string
	testsupport.Eventually(t, 2*time.Minute, "the dataset's job", func() bool {
		ds, err := led.Dataset(ctx, "datasets", "cats/")
		if err == nil && len(ds.Jobs) > 0 {
			jobID = ds.Jobs[0]
		}
		return jobID != ""
	})
	var st ledger.JobStatus
	testsupport.Eventually(t, 10*time.Minute, "the run to train (its first run.progress)", func() bool {
		st, err = led.Job(ctx, jobID)
		return err == nil && (st.Progress != nil || ledger.Terminal(st.State))
	})
	if ledger.Terminal(st.State) {
		t.Fatalf("job %s ended %s (%s) before the broker could be restarted mid-run\nlog tail: %s", jobID, st.State, st.Reason, st.LogTail)
	}
	restart := time.Now()
	if out, err := p.Run(ctx, "restart", "--timeout", "5", "broker"); err != nil {
		t.Fatalf("restarting the broker: %v\n%s", err, out)
	}
	t.Logf("broker restarted mid-run (epoch %d) in %s", st.Progress.Epoch, time.Since(restart).Round(100*time.Millisecond))

	testsupport.Eventually(t, 10*time.Minute, "job "+jobID+" to end", func() bool {
		st, err = led.Job(ctx, jobID)
		return err == nil && ledger.Terminal(st.State)
	})
	t.Logf("upload to run.finished: %s", time.Since(uploaded).Round(100*time.Millisecond))
	runID = st.RunID
	if st.State != ledger.StateSucceeded {
		t.Fatalf("job %s = %s (%s)\nlog tail: %s", jobID, st.State, st.Reason, st.LogTail)
	}
	if st.Executor != "docker" || !strings.HasPrefix(st.Image, "registry:5000/vp/torchvision-cpu@sha256:") {
		t.Errorf("job ran on %q in %q, want the docker executor and the compose registry's torchvision-cpu", st.Executor, st.Image)
	}
	// Nothing lost, nothing twice, though the broker restarted in between:
	// one of each event but run.progress; of those, the agent sends at
	// most one a second (a newer epoch's replaces a waiting one) and always
	// the last: so no epoch twice, and the last epoch's present.
	testsupport.Eventually(t, 30*time.Second, "every event of the job in the ledger", func() bool {
		evs, err := led.Events(ctx, jobID)
		if err != nil {
			return false
		}
		count := map[string]int{}
		epochsSeen := map[int]int{}
		for _, e := range evs {
			count[events.Type(e.Type()).Short()]++
			if events.Type(e.Type()) == events.RunProgress {
				var p events.RunProgressData
				if err := events.DecodeInto(e, &p); err != nil {
					t.Fatalf("run.progress %s: %v", e.ID(), err)
				}
				epochsSeen[p.Epoch]++
			}
		}
		want := map[string]int{"job.requested": 1, "image.built": 1, "run.started": 1, "run.finished": 1}
		for k, n := range want {
			if count[k] != n {
				t.Logf("events of the job so far: %v, want %v and run.progress up to epoch %d", count, want, epochs)
				return false
			}
		}
		for ep, n := range epochsSeen {
			if n != 1 || ep < 1 || ep > epochs {
				t.Fatalf("run.progress of epoch %d recorded %d times (epochs %v)", ep, n, epochsSeen)
			}
		}
		if epochsSeen[epochs] != 1 {
			t.Logf("run.progress epochs so far %v, want the last, %d", epochsSeen, epochs)
			return false
		}
		return true
	})
	names := map[string]bool{}
	for _, a := range st.Artifacts {
		names[a.Name] = true
		u, err := objstore.ParseURI(a.URI)
		if err != nil {
			t.Fatal(err)
		}
		info, err := mc.StatObject(ctx, u.Bucket, u.Key, miniogo.StatObjectOptions{})
		if err != nil || info.Size != a.Size {
			t.Errorf("artifact %s: %v (size %d, want %d)", a.URI, err, info.Size, a.Size)
		}
	}
	if !names["metrics.json"] || !names["weights/model.pt"] {
		t.Errorf("artifacts = %v, want weights/model.pt and metrics.json", names)
	}

	// down -v leaves nothing of the project.
	if out, err := p.Run(ctx, "down", "--volumes", "--timeout", "10"); err != nil {
		t.Fatalf("down -v: %v\n%s", err, out)
	}
	label := "label=com.docker.compose.project=" + name
	for _, args := range [][]string{
		{"ps", "--all", "--quiet", "--filter", label},
		// The run's training container too: it is no service of the
		// file, the gpu-runner made it.
		{"ps", "--all", "--quiet", "--filter", "label=dev.visionplatform.run=" + st.RunID},
		{"volume", "ls", "--quiet", "--filter", label},
		{"network", "ls", "--quiet", "--filter", label},
		{"network", "ls", "--quiet", "--filter", "name=" + p.Network()},
	} {
		out, err := exec.Command("docker", args...).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("after down -v, docker %s = %q, %v; want nothing", strings.Join(args, " "), out, err)
		}
	}
}

// loadImages builds the compose file's images (every function, vp,
// MinIO) with images/ into the layer cache, and docker loads them tagged
// prefix/NAME:latest.
func loadImages(t *testing.T, root, cache, prefix string) {
	t.Helper()
	staticMinIO(t, filepath.Join(cache, "minio-static"))
	lc, err := assemble.OpenCache(filepath.Join(cache, "images"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, set := range []struct {
		specs string
		names []string
	}{{"functions", functions}, {"services", []string{"vp", "minio"}}} {
		specs, err := imagespec.LoadDir(filepath.Join(root, "images", set.specs))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range set.names {
			tar := filepath.Join(dir, n+".tar")
			b, err := assemble.New(lc, specs, assemble.WithOutput("tar:"+tar), assemble.WithTarTag(prefix+"/"+n+":latest"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Build(context.Background(), n); err != nil {
				t.Fatalf("building image %s: %v", n, err)
			}
			tag := prefix + "/" + n + ":latest"
			old := imageID(tag)
			if out, err := exec.Command("docker", "load", "--quiet", "--input", tar).CombinedOutput(); err != nil {
				t.Fatalf("docker load %s: %v\n%s", n, err, out)
			}
			os.Remove(tar)
			if old != "" && old != imageID(tag) {
				_ = exec.Command("docker", "image", "rm", old).Run() // the replaced image, unless a container holds it
			}
		}
	}
}

// staticMinIO builds the pinned MinIO server without cgo into dir, as make
// compose-images does, unless it is there.
func staticMinIO(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "minio")); err == nil {
		return
	}
	version := ""
	mk, err := os.ReadFile(filepath.Join(testsupport.ModuleRoot(t), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mk), "\n") {
		if v, ok := strings.CutPrefix(l, "MINIO_VERSION := "); ok {
			version = strings.TrimSpace(v)
		}
	}
	if version == "" {
		t.Fatal("no MINIO_VERSION in the Makefile")
	}
	t.Logf("building MinIO %s without cgo into %s (once; minutes)", version, dir)
	cmd := exec.Command("go", "install", "-trimpath", "-ldflags", "-s -w", "github.com/minio/minio@"+version)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOBIN="+dir, "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building MinIO without cgo: %v\n%s", err, out)
	}
}

// imageID is the engine's id of the image tagged ref, "" when none is.
func imageID(ref string) string {
	out, err := exec.Command("docker", "image", "inspect", "--format", "{{.Id}}", ref).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
