package gpurunner

import "errors"

// ErrNoAgent is returned by Start when the process executor is chosen and
// no run agent is found: no vp-agent on PATH, no VP_AGENT, and a binary
// without an agent subcommand (WithSelfAgent).
var ErrNoAgent = errors.New("no run agent: vp-agent is not on PATH (set VP_AGENT to the agent's path, or to self in a binary with an agent subcommand)")

// ErrNotAJob is returned by RunID for an id that is not a job id.
var ErrNotAJob = errors.New("not a job id (job-<20 hex>)")
