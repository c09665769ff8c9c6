// Package up runs the platform locally: the broker and, as later parts
// land, the functions, each on its own port, wired by Knative Triggers
// exactly as on a cluster.
package up
