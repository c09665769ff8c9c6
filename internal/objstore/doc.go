// Package objstore is the small object-storage interface the platform needs
// (get, put with sha256, list, stat, presign, and server-side copy where
// the store can), with its MinIO (S3) implementation, the s3:// URI type,
// and the rule for which store errors are worth trying again.
package objstore
