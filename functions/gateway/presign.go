package gateway

import (
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/vision-platform/vp/functions/fn"
	"github.com/vision-platform/vp/internal/objstore"
)

// publicPresigner signs URLs for the store at endpoint, the address its
// clients reach it at (an http:// or https:// URL, or host:port with
// VP_S3_SECURE), with the store's credentials. The region is fixed
// (VP_S3_REGION, us-east-1 by default), so that signing asks that address
// nothing: the gateway may not reach it.
func publicPresigner(endpoint string, c fn.Config) (*objstore.MinIO, error) {
	secure, err := c.Bool("VP_S3_SECURE", false)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(endpoint, "https://"):
		endpoint, secure = strings.TrimPrefix(endpoint, "https://"), true
	case strings.HasPrefix(endpoint, "http://"):
		endpoint, secure = strings.TrimPrefix(endpoint, "http://"), false
	}
	access := c.Or("VP_S3_ACCESS_KEY", c.Get("AWS_ACCESS_KEY_ID"))
	secret := c.Or("VP_S3_SECRET_KEY", c.Get("AWS_SECRET_ACCESS_KEY"))
	mc, err := minio.New(strings.TrimSuffix(endpoint, "/"), &minio.Options{
		Creds:  credentials.NewStaticV4(access, secret, c.Get("VP_S3_SESSION_TOKEN")),
		Secure: secure,
		Region: c.Or("VP_S3_REGION", "us-east-1"),
	})
	if err != nil {
		return nil, err
	}
	return objstore.FromMinIO(mc), nil
}
