package assemble

import (
	"errors"
	"fmt"
)

var (
	// ErrNoSpec is returned for a spec name the builder was not given.
	ErrNoSpec = errors.New("no spec named")
	// ErrLockMissing is returned when a wheels layer's lock file does not
	// exist yet.
	ErrLockMissing = errors.New("lock file missing")
	// ErrForbidden is returned when a lock pins a distribution the spec
	// forbids.
	ErrForbidden = errors.New("forbidden distribution")
	// ErrPathConflict is returned when two layers of an image write the
	// same path (directories excepted), or a layer writes a path of the
	// base image that the spec's overrides do not list.
	ErrPathConflict = errors.New("path written twice")
	// ErrUnsafeSymlink is returned for a symlink of a dir source that is
	// absolute or leads out of the source directory.
	ErrUnsafeSymlink = errors.New("symlink escapes its root")
	// ErrChanged is returned when an input differs, as it is written into
	// a layer, from what its cache key was computed on.
	ErrChanged = errors.New("changed while the layer was written")
	// ErrBadOutput is the error of a FieldError on FieldOutput whose value
	// is neither oci:DIR nor tar:FILE.
	ErrBadOutput = errors.New("want oci:DIR or tar:FILE")
	// ErrOneImage is the error of a FieldError on FieldOutput when a tar
	// output is asked for more than one image.
	ErrOneImage = errors.New("a tar output takes one image")
	// ErrNothingToLock is returned by Lock when no spec it was given has
	// a wheels layer with a requirements file.
	ErrNothingToLock = errors.New("no wheels layer with requirements")
)

// Fields a FieldError names: the parameters of the options that take
// user input.
const (
	FieldRepository = "repository" // WithPush
	FieldOutput     = "output"     // WithOutput
	FieldTag        = "tag"        // WithTarTag
)

// FieldError is a bad value given to an option. Field says which (one of
// the Field constants), so a command can name its own flag.
type FieldError struct {
	Field string
	Value string
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s %q: %v", e.Field, e.Value, e.Err) }

func (e *FieldError) Unwrap() error { return e.Err }
