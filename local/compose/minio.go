package compose

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/notification"
)

// Bucket is a bucket to make, with the webhook targets (MinIO's ids, as in
// MINIO_NOTIFY_WEBHOOK_ENABLE_<ID>) told of every new object in it.
type Bucket struct {
	Name   string
	Notify []string
}

// ParseBucket reads NAME or NAME=ID,ID (the --bucket flag of vp-compose
// init-minio).
func ParseBucket(s string) (Bucket, error) {
	name, ids, _ := strings.Cut(s, "=")
	if name == "" {
		return Bucket{}, fmt.Errorf("bucket %q: no name", s)
	}
	b := Bucket{Name: name}
	for _, id := range strings.Split(ids, ",") {
		if id = strings.TrimSpace(id); id != "" {
			b.Notify = append(b.Notify, id)
		}
	}
	return b, nil
}

// SetupOptions bound SetupMinIO's waits.
type SetupOptions struct {
	// Timeout bounds the whole setup (default 2 minutes).
	Timeout time.Duration
	// TargetGrace is how long a webhook target MinIO does not know is
	// waited for before it is left out (default 10 s). MinIO loads its
	// targets after its health check answers, and leaves out for good a
	// target without a queue folder that did not answer it at its start.
	TargetGrace time.Duration
	// Poll is the wait between tries (default 200 ms).
	Poll time.Duration
}

// SetupMinIO makes the buckets (those that exist are kept) and sets each
// one's notifications, retrying while the server is not ready for it.
// Targets MinIO still does not know after the grace are left out and
// returned: the buckets notify the others only.
func SetupMinIO(ctx context.Context, mc *miniogo.Client, buckets []Bucket, o SetupOptions) (dropped []string, err error) {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.TargetGrace <= 0 {
		o.TargetGrace = 10 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 200 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	var unknownSince time.Time
	for {
		err := setup(ctx, mc, buckets)
		if err == nil {
			return dropped, nil
		}
		switch {
		case unknownTarget(err):
			if unknownSince.IsZero() {
				unknownSince = time.Now()
			}
			if time.Since(unknownSince) > o.TargetGrace {
				var d []string
				buckets, d = keepKnown(ctx, mc, buckets)
				dropped = append(dropped, d...)
				unknownSince = time.Time{}
				continue
			}
		case !notReady(err):
			return dropped, err
		}
		select {
		case <-ctx.Done():
			return dropped, fmt.Errorf("setting up MinIO: %w (last: %w)", ctx.Err(), err)
		case <-time.After(o.Poll):
		}
	}
}

func setup(ctx context.Context, mc *miniogo.Client, buckets []Bucket) error {
	for _, b := range buckets {
		ok, err := mc.BucketExists(ctx, b.Name)
		if err != nil {
			return fmt.Errorf("checking bucket %s: %w", b.Name, err)
		}
		if !ok {
			if err := mc.MakeBucket(ctx, b.Name, miniogo.MakeBucketOptions{}); err != nil {
				code := miniogo.ToErrorResponse(err).Code
				if code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
					return fmt.Errorf("making bucket %s: %w", b.Name, err)
				}
			}
		}
		if len(b.Notify) == 0 {
			continue
		}
		if err := notify(ctx, mc, b.Name, b.Notify); err != nil {
			return err
		}
	}
	return nil
}

// notify sets the notification of bucket to every new object, told to
// each target.
func notify(ctx context.Context, mc *miniogo.Client, bucket string, ids []string) error {
	cfg := notification.Configuration{}
	for _, id := range ids {
		a, err := notification.NewArnFromString(ARN(id))
		if err != nil {
			return fmt.Errorf("bucket %s: %w", bucket, err)
		}
		q := notification.NewConfig(a)
		q.AddEvents(notification.ObjectCreatedAll)
		cfg.AddQueue(q)
	}
	if err := mc.SetBucketNotification(ctx, bucket, cfg); err != nil {
		return &notifyError{bucket: bucket, err: err}
	}
	return nil
}

// notifyError is a bucket whose notification MinIO refused.
type notifyError struct {
	bucket string
	err    error
}

func (e *notifyError) Error() string {
	return fmt.Sprintf("setting the notification of bucket %s: %v", e.bucket, e.err)
}

func (e *notifyError) Unwrap() error { return e.err }

// keepKnown leaves out of each bucket the targets MinIO refuses one by one.
func keepKnown(ctx context.Context, mc *miniogo.Client, buckets []Bucket) ([]Bucket, []string) {
	var dropped []string
	out := make([]Bucket, len(buckets))
	for i, b := range buckets {
		out[i] = Bucket{Name: b.Name}
		for _, id := range b.Notify {
			if err := notify(ctx, mc, b.Name, []string{id}); err != nil && unknownTarget(err) {
				dropped = append(dropped, id)
				continue
			}
			out[i].Notify = append(out[i].Notify, id)
		}
	}
	return out, dropped
}

// ARN is the notification ARN of webhook target id.
func ARN(id string) string { return "arn:minio:sqs::" + strings.ToUpper(id) + ":webhook" }

// unknownTarget is a notification naming a target MinIO does not know.
func unknownTarget(err error) bool {
	var ne *notifyError
	if !errors.As(err, &ne) {
		return false
	}
	code := miniogo.ToErrorResponse(ne.err).Code
	return code == "InvalidArgument" || strings.Contains(ne.err.Error(), "destination ARN does not exist")
}

func notReady(err error) bool {
	code := miniogo.ToErrorResponse(errors.Unwrap(err)).Code
	if code == "XMinioServerNotInitialized" || code == "ServiceUnavailable" || code == "SlowDown" {
		return true
	}
	// The server is still starting, or restarting: no answer at all.
	var re miniogo.ErrorResponse
	return !errors.As(err, &re) && code == ""
}
