package mlflowsync

import "errors"

// ErrNoTrackingURI is returned by Start without VP_MLFLOW_TRACKING_URI.
var ErrNoTrackingURI = errors.New("VP_MLFLOW_TRACKING_URI is not set: the MLflow tracking server's URL, e.g. http://127.0.0.1:5000")

// ErrNotStarted is the answer to a run.progress or run.finished whose
// run's run.started has not been synced yet (the experiment is named after
// the dataset, which only run.started carries): the broker redelivers it.
var ErrNotStarted = errors.New("the run's run.started has not been synced to MLflow yet")

// ErrExperimentDeleted is a dataset's experiment that was deleted in
// MLflow: runs cannot be created in it until it is restored (or purged).
var ErrExperimentDeleted = errors.New("the dataset's MLflow experiment is deleted: restore it, or purge it so it can be made again")
