package ociregistry

import "errors"

// ErrNotPositive is returned by an option given a duration that is zero or
// negative.
var ErrNotPositive = errors.New("not positive")
