// Package mlflow is a small client of MLflow's tracking and model registry
// REST API (/api/2.0/mlflow/...): experiments, runs, their metrics, params
// and tags, and registered models with their versions, with token or basic
// authentication. It speaks HTTP only; the tracking server is a process of
// its own.
package mlflow
