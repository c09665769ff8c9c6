// Package smoke holds the test that keeps the catalog's `ready` honest:
// every ready model of registry.Default trains a few steps on a tiny
// generated dataset of its task, inside its own framework image, through
// the run agent and a real MinIO, with the training's networking cut off.
//
// The framework images are built with images/assemble from their locks
// (the wheels come from the layer cache's wheel store, or from PyPI where
// it answers), pushed to the embedded registry and pulled by the Docker
// Engine, which runs the SDK (python3 -m vp_sdk.run) in a container with
// --network none: no interface but loopback, which the test checks. The
// run agent (images/agent.Run, the code vp-agent runs) drives it from the
// host: it downloads the dataset from MinIO into a folder the container
// mounts at the same path, reads the SDK's protocol lines, uploads the
// artifacts and reports run.finished. So the training itself, the only
// code that could fetch weights, fonts or hub files, has no network, and
// everything else is the platform's own path.
//
// The test skips, naming what is missing, where no Docker Engine answers
// or where the wheels are neither in the wheel store nor reachable on
// PyPI (the go-docker kind of machine); it fails on anything else.
package smoke
