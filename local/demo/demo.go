package demo

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/gateway/api"
	"github.com/vision-platform/vp/functions/gateway/client"
	"github.com/vision-platform/vp/internal/ledger"
)

// Config is one demo against a running platform.
type Config struct {
	// MinIO is the store's S3 API, host:port (default 127.0.0.1:9000, vp
	// up's), with its credentials; Secure talks TLS.
	MinIO, MinIOUser, MinIOPassword string
	Secure                          bool
	// Bucket is the bucket whose uploads train (default datasets).
	Bucket string
	// Gateway is the gateway's URL (default http://127.0.0.1:8088) and
	// Token a bearer token of it.
	Gateway, Token string
	// Name is the dataset's name and prefix (default demo-TIME).
	Name string
	// Dataset is the data made (default 8 images a class, 32 pixels, a
	// new seed).
	Dataset Dataset
	// Training is what the dataset asks to train (default
	// torchvision/resnet18, 2 epochs, batch 8, image size 32, on CPU).
	Training Training
	// Timeout bounds the whole demo (default 15 minutes).
	Timeout time.Duration
	// Out receives the demo's story (default standard output).
	Out io.Writer
}

func (c *Config) defaults() error {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.MinIO, "127.0.0.1:9000")
	def(&c.Bucket, "datasets")
	def(&c.Gateway, "http://127.0.0.1:8088")
	if c.Name == "" {
		c.Name = "demo-" + time.Now().UTC().Format("20060102-150405")
	}
	if c.Dataset.PerClass <= 0 {
		c.Dataset.PerClass = 8
	}
	if c.Dataset.Side <= 0 {
		c.Dataset.Side = 32
	}
	if c.Dataset.Seed == 0 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("seeding the dataset: %w", err)
		}
		c.Dataset.Seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	t := &c.Training
	def(&t.Model, "torchvision/resnet18")
	if t.Epochs <= 0 {
		t.Epochs = 2
	}
	if t.BatchSize <= 0 {
		t.BatchSize = 8
	}
	if t.LearningRate <= 0 {
		t.LearningRate = 0.01
	}
	if t.ImageSize <= 0 {
		t.ImageSize = c.Dataset.Side
	}
	if c.Timeout <= 0 {
		c.Timeout = 15 * time.Minute
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	return nil
}

// Report is how a demo ended.
type Report struct {
	Prefix    string // bucket/prefix of the dataset
	JobID     string
	State     string // the job's final state (succeeded, failed, ...)
	Reason    string
	Metrics   map[string]float64
	Artifacts []api.Artifact
	Log       *api.Artifact
	// Console is the job's page in the console.
	Console string
	Times   Times
}

// Run makes the dataset in a temporary folder, uploads it (the
// dataset.yaml last: a dataset is complete when it lands), waits for the
// job it starts, prints each of the job's events as it arrives, then the
// final metrics, the artifacts' links and where the time went. A job that
// does not succeed is an error, with the report.
func Run(ctx context.Context, c Config) (*Report, error) {
	if err := c.defaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	gw, err := client.New(c.Gateway, c.Token)
	if err != nil {
		return nil, fmt.Errorf("the gateway: %w", err)
	}
	mc, err := miniogo.New(c.MinIO, &miniogo.Options{Creds: credentials.NewStaticV4(c.MinIOUser, c.MinIOPassword, ""), Secure: c.Secure, Region: "us-east-1"})
	if err != nil {
		return nil, fmt.Errorf("MinIO %s: %w", c.MinIO, err)
	}
	out := c.Out
	r := &Report{Prefix: c.Bucket + "/" + c.Name + "/"}

	// Asking the gateway first says early when the platform is not there.
	if _, err := gw.Datasets(ctx); err != nil {
		return nil, fmt.Errorf("the gateway at %s does not answer (is vp up or make compose-up running?): %w", c.Gateway, err)
	}
	dir, err := os.MkdirTemp("", "vp-demo-")
	if err != nil {
		return nil, fmt.Errorf("making the dataset: %w", err)
	}
	defer os.RemoveAll(dir)
	files, size, err := c.Dataset.Write(dir)
	if err != nil {
		return nil, err
	}
	manifest := Manifest(c.Name, files, size, c.Training)
	fmt.Fprintf(out, "Dataset %s: %d PNGs of %d×%d (%s), classification, imagefolder; trains %s for %d epochs\n",
		c.Name, files, c.Dataset.Side, c.Dataset.Side, kib(size), c.Training.Model, c.Training.Epochs)

	r.Times.UploadStart = time.Now()
	if err := upload(ctx, mc, c.Bucket, c.Name+"/", dir, manifest); err != nil {
		return nil, fmt.Errorf("uploading to MinIO at %s (bucket %s): %w", c.MinIO, c.Bucket, err)
	}
	r.Times.UploadEnd = time.Now()
	fmt.Fprintf(out, "%s  uploaded to s3://%s in %s\n", clock(r.Times.UploadEnd), r.Prefix, round(since(r.Times.UploadStart, r.Times.UploadEnd)))

	ds, err := waitJob(ctx, gw, c.Bucket, c.Name+"/")
	if err != nil {
		return r, err
	}
	r.JobID, r.Times.Uploaded = ds.Jobs[0], ds.Uploaded
	fmt.Fprintf(out, "%s  dataset.uploaded  digest %s → job %s\n", clock(ds.Uploaded), short(ds.Digest), r.JobID)

	err = gw.Follow(ctx, r.JobID, "", func(e client.Event) error {
		line(out, r, e)
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("following job %s: %w", r.JobID, err)
	}
	st, err := final(ctx, gw, r.JobID)
	if err != nil {
		return r, err
	}
	r.State, r.Reason, r.Metrics = st.State, st.Reason, st.Metrics
	if arts, err := gw.Artifacts(ctx, r.JobID); err == nil {
		r.Artifacts, r.Log = arts.Artifacts, arts.Log
	} else {
		fmt.Fprintf(out, "(the artifacts' links: %v)\n", err)
	}
	r.Console = strings.TrimSuffix(c.Gateway, "/") + "/jobs/" + r.JobID
	r.print(out)
	if err := r.Times.Print(out); err != nil {
		return r, err
	}
	if r.State != ledger.StateSucceeded {
		return r, fmt.Errorf("job %s %s: %s", r.JobID, r.State, r.Reason)
	}
	return r, nil
}

// upload puts every file of dir under prefix, then the manifest.
func upload(ctx context.Context, mc *miniogo.Client, bucket, prefix, dir, manifest string) error {
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		_, err = mc.FPutObject(ctx, bucket, prefix+filepath.ToSlash(rel), p, miniogo.PutObjectOptions{ContentType: "image/png"})
		return err
	})
	if err != nil {
		return err
	}
	_, err = mc.PutObject(ctx, bucket, prefix+"dataset.yaml", strings.NewReader(manifest), int64(len(manifest)), miniogo.PutObjectOptions{ContentType: "application/yaml"})
	return err
}

// waitJob waits until the ledger (through the gateway) has the dataset at
// prefix with its job; a rejected dataset is an error naming the reasons.
func waitJob(ctx context.Context, gw *client.Client, bucket, prefix string) (ledger.DatasetStatus, error) {
	for {
		list, err := gw.Datasets(ctx)
		if err == nil {
			for _, d := range list.Datasets {
				if d.Bucket != bucket || d.Prefix != prefix {
					continue
				}
				if d.State == "rejected" {
					var rs []string
					for _, r := range d.Reasons {
						rs = append(rs, r.Error())
					}
					return d, fmt.Errorf("the dataset was rejected: %s", strings.Join(rs, "; "))
				}
				if len(d.Jobs) > 0 {
					return d, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return ledger.DatasetStatus{}, fmt.Errorf("waiting for the job of s3://%s/%s (MinIO's webhook, dataset-intake, job-trigger): %w", bucket, prefix, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// final is the job's status once the ledger has its end (the stream may
// end first: each is told by the broker on its own).
func final(ctx context.Context, gw *client.Client, id string) (ledger.JobStatus, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := gw.Job(ctx, id)
		if err != nil {
			return st, fmt.Errorf("reading job %s: %w", id, err)
		}
		if ledger.Terminal(st.State) || time.Now().After(deadline) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("reading job %s: %w", id, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// line prints one event of the job as it arrives, and notes its time.
func line(out io.Writer, r *Report, e client.Event) {
	ce := e.CloudEvent
	at := ce.Time()
	s := clock(at) + "  " + e.Type
	p, err := events.Decode(ce)
	if err != nil {
		fmt.Fprintln(out, s)
		return
	}
	switch d := p.(type) {
	case *events.JobRequestedData:
		r.Times.Requested = at
		s += fmt.Sprintf("  %s, %d epochs, batch %d, image size %d", d.Model, d.Hyperparameters.Epochs, d.Hyperparameters.BatchSize, d.Hyperparameters.ImageSize)
	case *events.ImageBuiltData:
		r.Times.Built = at
		s += "  " + d.Reference
		if d.CacheHit {
			s += " (cache hit)"
		} else {
			s += fmt.Sprintf(" (built in %s, %s pushed, %s reused)", round(time.Duration(d.DurationMS)*time.Millisecond), kib(d.BytesPushed), kib(d.BytesReused))
		}
	case *events.ImageFailedData:
		r.Times.Ended = at
		s += "  " + d.Reason + ": " + d.Message
	case *events.RunStartedData:
		r.Times.Started = at
		s += "  " + d.RunID + " on the " + d.Executor + " executor"
	case *events.RunProgressData:
		if r.Times.FirstProgress.IsZero() {
			r.Times.FirstProgress = at
		}
		s += fmt.Sprintf("  epoch %d step %d  %s", d.Epoch, d.Step, metrics(d.Metrics))
	case *events.RunFinishedData:
		r.Times.Finished, r.Times.Ended = at, at
		s += "  " + d.Status + "  " + metrics(d.Metrics)
		if d.Reason != "" {
			s += " (" + d.Reason + ")"
		}
	case *events.JobCancelledData:
		r.Times.Ended = at
		s += "  " + d.Reason
	}
	fmt.Fprintln(out, s)
}

func (r *Report) print(out io.Writer) {
	fmt.Fprintf(out, "\nJob %s %s", r.JobID, r.State)
	if r.Reason != "" {
		fmt.Fprintf(out, " (%s)", r.Reason)
	}
	fmt.Fprintln(out)
	if len(r.Metrics) > 0 {
		fmt.Fprintf(out, "  metrics    %s\n", metrics(r.Metrics))
	}
	for _, a := range r.Artifacts {
		fmt.Fprintf(out, "  artifact   %s (%s)\n             %s\n", a.Name, kib(a.Size), a.URL)
	}
	if r.Log != nil {
		fmt.Fprintf(out, "  log        %s\n", r.Log.URL)
	}
	fmt.Fprintf(out, "  console    %s (sign in with the gateway token)\n", r.Console)
}

func metrics(m map[string]float64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%.4g", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "--:--:--.---"
	}
	return t.Local().Format("15:04:05.000")
}

func short(digest string) string {
	if _, hex, ok := strings.Cut(digest, ":"); ok && len(hex) > 12 {
		return digest[:len(digest)-len(hex)+12]
	}
	return digest
}

func kib(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
