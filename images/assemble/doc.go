// Package assemble assembles OCI images from specs without a Docker
// daemon: deterministic tar layers from dir, file, go and wheel sources,
// compressed once in parallel and kept in an on-disk OCI layout keyed by
// the content of their inputs, put together with go-containerregistry's
// mutate, then written to an output and pushed. Builder.Build is the one
// build → output → push function that vp images build and the image
// builder call; Lock writes the lock files its wheel layers install from.
// It prints nothing: progress goes to a callback.
package assemble
