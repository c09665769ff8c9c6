// Package functions holds the image specs of the platform's functions
// (vp images build-functions builds them): function-base, made from files
// (a non-root user, the CA certificates), and on it one image per function
// with its Go binary, built ko-style for amd64 and arm64.
package functions
