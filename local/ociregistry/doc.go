// Package ociregistry is the platform's embedded OCI registry: the CNCF
// distribution library with its filesystem driver, so blobs, manifests and
// tags live on disk and survive restarts, behind the limits a long-running
// local service needs (timeouts that follow progress, purging of abandoned
// uploads, checks distribution leaves out).
package ociregistry
