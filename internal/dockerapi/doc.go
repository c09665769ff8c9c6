// Package dockerapi speaks the Docker Engine API over the engine's socket
// (or TCP): the few calls that pull an image and run a container through
// its life (ping, pull, create, start, wait, kill, remove, list, inspect,
// logs, and the networks a test makes), with no docker CLI and no Docker
// SDK, so a static binary in a scratch image can drive the engine whose
// socket it is given.
package dockerapi
