// Package publish pushes built images to a registry: blobs the registry
// already has are skipped, blobs it has in another repository are mounted
// rather than uploaded, and the result reports the bytes pushed and reused.
package publish
