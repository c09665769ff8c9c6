// Package broker is the local event broker: Knative Eventing's Broker and
// Trigger semantics (ingress, filters, delivery spec, retries, dead letters,
// replies with a hop TTL) over durable NATS JetStream storage, embedded or
// external. A function that works against it works against Knative.
package broker
