// Package credentials holds the secrets vp up makes once and keeps in its
// data folder (credentials.json, mode 0600): MinIO's user and password,
// the token MinIO's webhook presents to dataset-intake, and the gateway's
// token. docker-compose takes the same file (local/compose), so that
// vp demo, vp jobs and the console work the same against either.
package credentials
