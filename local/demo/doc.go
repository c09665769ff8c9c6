// Package demo shows the platform at work on a running vp up or compose:
// it makes a small dataset, uploads it to MinIO, follows the job it starts
// live through the gateway, and says where the time went.
package demo
