// Package build assembles OCI images from specs without a Docker daemon:
// deterministic tar layers from dir, file, go and wheel sources, compressed
// once in parallel and kept in an on-disk OCI layout keyed by the content
// of their inputs, then put together with go-containerregistry's mutate.
package build
