// Package jobtrigger is the job-trigger function, the platform's
// auto-train policy: on dataset.uploaded it checks the dataset's layout
// for its task and format over a view of the object store, then asks for
// the training its dataset.yaml's train block (or else the first of the
// function's rules for its bucket and prefix) names, with the model's
// default hyperparameters filled in and the job checked against the model
// catalog. It answers job.requested, or dataset.rejected naming every
// problem by file and line, or nothing: no policy, or a job the ledger
// already holds (identical content trains once, unless dataset.yaml says
// retrain: true).
package jobtrigger
