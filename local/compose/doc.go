// Package compose runs the platform under Docker Compose: the helpers the
// compose file's containers run (a health probe, MinIO's buckets and
// notifications, the .env file of credentials and host paths), and a
// Project that drives docker-compose or the docker compose plugin.
package compose
