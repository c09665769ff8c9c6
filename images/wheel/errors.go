package wheel

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is returned when no wheel with an allowed hash is found.
	ErrNotFound = errors.New("no wheel with an allowed hash")
	// ErrNotPinned is returned for a wheel whose sha256 its lock does not
	// pin (see NotPinnedError).
	ErrNotPinned = errors.New("sha256 not pinned by the lock")
	// ErrBadWheel is returned for a wheel the installer refuses: a member
	// that escapes its root, is missing from RECORD or differs from it, an
	// unknown .data scheme, a malformed WHEEL or RECORD.
	ErrBadWheel = errors.New("bad wheel")
)

// NotPinnedError is a wheel file whose sha256 the lock does not pin.
type NotPinnedError struct {
	File string // base name
	Sum  string // hex sha256 of its bytes
}

func (e *NotPinnedError) Error() string {
	return fmt.Sprintf("%s has sha256 %s, which the lock does not pin", e.File, e.Sum)
}

// Is makes errors.Is(err, ErrNotPinned) hold.
func (e *NotPinnedError) Is(target error) bool { return target == ErrNotPinned }
