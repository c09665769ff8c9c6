// Package funcyaml reads a function's func.yaml, in the format of the func
// CLI (knative.dev/func's schema/func_yaml-schema.json): how the function
// runs, and the events it subscribes to, which drive the local broker's
// triggers and the Knative Triggers alike.
package funcyaml
