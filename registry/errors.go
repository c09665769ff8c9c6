package registry

import "errors"

// ErrUnknownModel is returned by Lookup for a framework and name the
// catalog does not hold.
var ErrUnknownModel = errors.New("unknown model")
