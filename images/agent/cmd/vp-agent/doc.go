// Command vp-agent is the run agent of the framework images. It reads a
// run.started event (VP_RUN_EVENT, or --event, by default where Knative's
// JobSink mounts it), runs the training and reports by event to K_SINK.
// `vp agent` is the same command (agent.Main).
//
// Exit codes: 0 succeeded, 1 failed, 2 bad request or setup, 143 cancelled.
package main
