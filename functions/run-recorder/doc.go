// Package runrecorder is the run-recorder function: it keeps every
// platform event in the job ledger (internal/ledger), so that a job's
// status, its timeline, the datasets' statuses and the index of trained
// models with their lineage can be read from object storage.
package runrecorder
