// Package dockerapitest is an in-memory stand-in for the Docker Engine on
// a unix socket, for tests where no engine can do what they check (GPU
// device requests on a host without GPUs, an engine's answers at a given
// moment): it answers enough of the API for dockerapi's calls and records
// every request. Tests that can run a real engine should.
package dockerapitest
