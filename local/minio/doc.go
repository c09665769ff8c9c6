// Package minio runs a MinIO server as a process of its own (MinIO is
// AGPL: it is run, never linked) for vp up and the tests: its webhook
// notification targets, its buckets and their notifications set up, ready
// before Start returns.
package minio
