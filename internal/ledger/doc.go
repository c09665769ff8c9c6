// Package ledger keeps the platform's record in object storage: every
// event of a job (jobs/{jobid}/events/{id}.json, idempotent by event id),
// the job's status folded from them (jobs/{jobid}/status.json), each
// dataset's status, and the index of trained models with their lineage
// (models/{framework}/{name}/{runid}.json). The run-recorder function
// writes it; the gateway and the CLI read it.
package ledger
