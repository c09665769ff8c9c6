package dataset

import "errors"

// ErrInvalidManifest is wrapped by every error about a manifest.json that
// does not hold a valid file list.
var ErrInvalidManifest = errors.New("invalid manifest")
