package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/weights"
	"github.com/vision-platform/vp/local/up"
	"github.com/vision-platform/vp/registry"
)

// progressFrom is the size from which vp weights import shows its
// progress on stderr.
const progressFrom = 8 << 20

type weightsFlags struct {
	bucket   string
	endpoint string
	secure   bool
	data     string
}

func newWeightsCmd() *cobra.Command {
	f := &weightsFlags{}
	cmd := &cobra.Command{
		Use:   "weights",
		Short: "Pretrained weights in the platform's object storage: import a file for a model, list them",
		Long: `Pretrained weights for the catalog's models, kept in the platform's MinIO. A job with
pretrained: true starts from its model's imported weights; where a model has none, the
adapter loads them from its model hub, which vp up (offline) takes as unreachable and
refuses the job, naming the import command.

Object storage: --s3-endpoint (VP_S3_ENDPOINT, else vp up's 127.0.0.1:9000), credentials
from VP_S3_ACCESS_KEY and VP_S3_SECRET_KEY (or AWS_*), else from vp up's data folder.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.bucket, "bucket", envOr("VP_WEIGHTS_BUCKET", weights.DefaultBucket), "bucket of the weights (VP_WEIGHTS_BUCKET)")
	pf.StringVar(&f.endpoint, "s3-endpoint", envOr("VP_S3_ENDPOINT", "127.0.0.1:9000"), "object storage (MinIO) S3 API: host:port or URL (VP_S3_ENDPOINT)")
	pf.BoolVar(&f.secure, "s3-secure", os.Getenv("VP_S3_SECURE") == "true", "TLS to the object storage (VP_S3_SECURE)")
	pf.StringVar(&f.data, "data", up.DefaultDataDir(), "vp up's data folder, whose credentials.json is used when no VP_S3_ACCESS_KEY is set")
	cmd.AddCommand(newWeightsImportCmd(f), newWeightsLsCmd(f))
	return cmd
}

func newWeightsImportCmd(f *weightsFlags) *cobra.Command {
	var model string
	cmd := &cobra.Command{
		Use:   "import FILE --model FRAMEWORK/NAME",
		Short: "Upload a weights file as the pretrained weights a model's jobs start from",
		Long: `Upload FILE as the current pretrained weights of a catalog model. The file is stored
under its sha256 (<bucket>/<framework>/<name>/<sha256><ext>) and current.json names it;
importing another file later makes that one current.

What each adapter takes: torchvision and timm a PyTorch state dict (.pth/.pt, or a
checkpoint holding one under "model" or "state_dict"; .safetensors where the image has
safetensors), whose classification head is replaced for the dataset's classes;
huggingface a .tar.gz (or .zip) of the folder save_pretrained writes (config.json and
model.safetensors), or a single model.safetensors for a model built from its type;
ultralytics a .pt that YOLO() loads; custom gets the path as ${weights}.`,
		Example: `  vp weights import resnet18-f37072fd.pth --model torchvision/resnet18
  vp weights import vit-base.tar.gz --model huggingface/vit-base-patch16-224`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseModel(model)
			if err != nil {
				return err
			}
			file := args[0]
			fi, err := os.Stat(file)
			if err != nil {
				return fmt.Errorf("importing %s: %w", file, err)
			}
			s, err := f.store()
			if err != nil {
				return err
			}
			if err := ensureBucket(cmd, s, f.bucket); err != nil {
				return fmt.Errorf("importing %s: %w", file, err)
			}
			opts := []weights.Option{weights.WithBucket(f.bucket)}
			if fi.Size() >= progressFrom {
				opts = append(opts, weights.WithProgress(weightsProgress(cmd.ErrOrStderr(), filepath.Base(file))))
			}
			rec, err := weights.Import(cmd.Context(), s, ref, file, opts...)
			if err != nil {
				return f.storeError(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: imported %s (%s, sha256 %s) as %s\njobs for %s with pretrained: true start from it\n",
				ref, rec.File, humanBytes(rec.Size), rec.SHA256, rec.Object, ref)
			return nil
		},
	}
	cmd.Flags().StringVar(&model, "model", "", "the catalog model the weights are for: FRAMEWORK/NAME (vp models lists them)")
	_ = cmd.MarkFlagRequired("model")
	return cmd
}

func newWeightsLsCmd(f *weightsFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the models that have imported weights, with their current file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := f.store()
			if err != nil {
				return err
			}
			recs, err := weights.List(cmd.Context(), s, weights.WithBucket(f.bucket))
			if err != nil {
				return f.storeError(err)
			}
			out := cmd.OutOrStdout()
			if len(recs) == 0 {
				fmt.Fprintf(out, "no weights imported in s3://%s/ (vp weights import FILE --model FRAMEWORK/NAME)\n", f.bucket)
				return nil
			}
			w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "MODEL\tFILE\tSIZE\tSHA256\tIMPORTED")
			for _, r := range recs {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Model(), r.File, humanBytes(r.Size), r.SHA256[:12], r.Imported.Format(time.RFC3339))
			}
			return w.Flush()
		},
	}
}

// parseModel reads --model: FRAMEWORK/NAME of the catalog.
func parseModel(s string) (events.ModelRef, error) {
	fw, name, ok := strings.Cut(s, "/")
	if !ok || fw == "" || name == "" || strings.Contains(name, "/") {
		return events.ModelRef{}, fmt.Errorf("--model %q: want FRAMEWORK/NAME, such as torchvision/resnet18", s)
	}
	if _, err := registry.Default().Lookup(fw, name); err != nil {
		return events.ModelRef{}, fmt.Errorf("--model %s: not in the catalog (vp models lists its models): %w", s, err)
	}
	return events.ModelRef{Framework: fw, Name: name}, nil
}

// store connects to the object storage the flags and environment name.
func (f *weightsFlags) store() (*objstore.MinIO, error) {
	creds := objstore.Credentials{
		AccessKey:    firstNonEmpty(os.Getenv("VP_S3_ACCESS_KEY"), os.Getenv("AWS_ACCESS_KEY_ID")),
		SecretKey:    firstNonEmpty(os.Getenv("VP_S3_SECRET_KEY"), os.Getenv("AWS_SECRET_ACCESS_KEY")),
		SessionToken: firstNonEmpty(os.Getenv("VP_S3_SESSION_TOKEN"), os.Getenv("AWS_SESSION_TOKEN")),
	}
	if creds.AccessKey == "" && creds.SecretKey == "" {
		p := filepath.Join(f.data, "credentials.json")
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("no object storage credentials: set VP_S3_ACCESS_KEY and VP_S3_SECRET_KEY, or run vp up once (it keeps them in %s; --data): %w", p, err)
		}
		var c struct {
			User     string `json:"minioUser"`
			Password string `json:"minioPassword"`
		}
		if err := json.Unmarshal(b, &c); err != nil || c.User == "" {
			return nil, fmt.Errorf("reading the credentials in %s: %v", p, err)
		}
		creds.AccessKey, creds.SecretKey = c.User, c.Password
	}
	s, err := objstore.NewMinIO(f.endpoint, creds, f.secure)
	if err != nil {
		return nil, fmt.Errorf("--s3-endpoint %q: %w", f.endpoint, err)
	}
	return s, nil
}

// storeError adds what to check when the store cannot be reached.
func (f *weightsFlags) storeError(err error) error {
	if objstore.Transient(err) {
		return fmt.Errorf("%w (is the object storage at %s up? vp up starts it; --s3-endpoint)", err, f.endpoint)
	}
	return err
}

// ensureBucket makes the weights bucket when it is not there yet.
func ensureBucket(cmd *cobra.Command, s *objstore.MinIO, bucket string) error {
	c := s.Client()
	ok, err := c.BucketExists(cmd.Context(), bucket)
	if err != nil {
		return fmt.Errorf("looking for bucket %s: %w", bucket, err)
	}
	if ok {
		return nil
	}
	if err := c.MakeBucket(cmd.Context(), bucket, minio.MakeBucketOptions{}); err != nil {
		var resp minio.ErrorResponse
		if errors.As(err, &resp) && (resp.Code == "BucketAlreadyOwnedByYou" || resp.Code == "BucketAlreadyExists") {
			return nil
		}
		return fmt.Errorf("making bucket %s: %w", bucket, err)
	}
	return nil
}

// weightsProgress writes a line at every tenth of each phase.
func weightsProgress(w io.Writer, name string) func(weights.Progress) {
	shown := map[string]int64{}
	return func(p weights.Progress) {
		if p.Total <= 0 {
			return
		}
		tenth := p.Done * 10 / p.Total
		if last, ok := shown[p.Phase]; ok && tenth <= last {
			return
		}
		shown[p.Phase] = tenth
		fmt.Fprintf(w, "%s %s: %3d%% of %s\n", p.Phase, name, tenth*10, humanBytes(p.Total))
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
