package weights

import "errors"

var (
	// ErrNoWeights is a model with no imported weights (no current.json,
	// or no bucket at all).
	ErrNoWeights = errors.New("no imported weights")
	// ErrDigestMismatch is a download whose bytes are not the sha256 (or
	// size) the record names.
	ErrDigestMismatch = errors.New("sha256 mismatch")
	// ErrChanged is a file that changed while it was being imported: the
	// bytes sent are not the bytes hashed before.
	ErrChanged = errors.New("the file changed while it was imported")
	// ErrBadModel is a model reference that cannot name a place in the
	// store (empty, or not a plain name).
	ErrBadModel = errors.New("not a usable model reference")
	// ErrBadRecord is a current.json that does not describe weights of its
	// model.
	ErrBadRecord = errors.New("unusable weights record")
)
