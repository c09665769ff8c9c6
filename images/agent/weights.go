package agent

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/vision-platform/vp/internal/weights"
)

// fetchWeights brings the model's imported weights (internal/weights) into
// the work folder for a job that asks for pretrained ones, and returns
// their local path for the SDK's --weights: "" when the job does not ask
// for them, or when none were imported (the adapter then loads them from
// its model hub, as without a weights store). A download that does not
// match the imported sha256 fails the run.
func (r *run) fetchWeights(ctx context.Context) (string, error) {
	if !r.req.Job.Hyperparameters.Pretrained {
		return "", nil
	}
	model := r.req.Job.Model
	dir := filepath.Join(r.c.WorkDir, "pretrained")
	var path string
	var rec weights.Record
	err := retry(ctx, r.c.Attempts, 250*time.Millisecond, func() error {
		var err error
		path, rec, err = weights.Fetch(ctx, r.c.Store, model, dir, weights.WithBucket(r.c.WeightsBucket))
		return err
	})
	if errors.Is(err, weights.ErrNoWeights) {
		r.logf("vp-agent: no imported weights for %s in s3://%s/: the adapter loads pretrained weights from its model hub", model, r.c.WeightsBucket)
		return "", nil
	}
	if err != nil {
		return "", err
	}
	r.logf("vp-agent: pretrained weights: %s (%s, %d bytes, sha256 %s, imported %s)", rec.Object, rec.File, rec.Size, rec.SHA256, rec.Imported.Format(time.RFC3339))
	return path, nil
}
