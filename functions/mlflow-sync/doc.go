// Package mlflowsync is the mlflow-sync function: it keeps one MLflow run
// per platform run (run.started, run.progress, run.finished) through
// MLflow's REST API, idempotently under redelivery and out-of-order
// events, and registers succeeded runs' models in MLflow's model registry.
package mlflowsync
