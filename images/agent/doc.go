// Package agent is the run agent that every framework image carries: it
// reads its run request (a run.started CloudEvent, where Knative's JobSink
// would mount it), downloads and checks the dataset, runs the training
// adapter, turns its metric lines into run.progress events, keeps the log,
// checkpoints and artifacts in object storage, and ends every run with
// exactly one run.finished.
package agent
