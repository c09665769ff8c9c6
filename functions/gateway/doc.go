// Package gateway is the gateway function: the platform's front door. An
// HTTP function serving the API (models, jobs with their live event
// streams, dataset uploads through presigned URLs, events from other
// systems, images; OpenAPI 3.1 at /openapi.json), the web console, and the
// job events the broker delivers to it, fanned out to the clients following
// each job.
package gateway
