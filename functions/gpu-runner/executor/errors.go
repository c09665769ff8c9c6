package executor

import "errors"

var (
	// ErrUnknownRun is returned when cancelling or waiting for a run the
	// executor does not know.
	ErrUnknownRun = errors.New("unknown run")
	// ErrNoGPUs is returned for a run that asks for more GPUs than the
	// host has.
	ErrNoGPUs = errors.New("not enough GPUs")
	// ErrNoEngine is returned when the docker executor is asked for and no
	// Docker Engine answers.
	ErrNoEngine = errors.New("no Docker Engine answers")
	// ErrNoKubernetes is returned when the kubernetes executor is asked for
	// and the binary has none (Choose was not given WithKubernetes).
	ErrNoKubernetes = errors.New("this binary has no kubernetes executor")
	// ErrUnknownExecutor is returned by Choose for a mode it does not know.
	ErrUnknownExecutor = errors.New("unknown executor")
	// ErrInvalidRun is returned by Launch for a run no executor can
	// launch as it is: no run.started event, one for another run, no
	// image where the executor needs one. Launching it again cannot
	// succeed.
	ErrInvalidRun = errors.New("invalid run")
)
