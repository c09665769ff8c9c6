package objstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"

	"github.com/minio/minio-go/v7"
)

var (
	// ErrNotFound is an object, version or bucket that is not there.
	ErrNotFound = errors.New("not found")
	// ErrTooLarge is an object larger than the size a Get allowed.
	ErrTooLarge = errors.New("larger than allowed")
	// ErrNoEndpoint is returned by FromEnv when VP_S3_ENDPOINT is not set.
	ErrNoEndpoint = errors.New("VP_S3_ENDPOINT is not set")
)

// Transient reports whether err is worth trying again: the store could not
// be reached or dropped the connection (a *net.OpError, a transport
// *url.Error, a body cut short), or it answered that it is busy or failed
// on its side (408, 429, 500, 502, 503, 504, SlowDown, ...). Everything
// else is final: a refusal (403, 404, a bad version id), ErrTooLarge, a
// digest mismatch, the caller's context ending, and every local error (a
// file that cannot be created or written: EISDIR, EINVAL, ENOSPC, which a
// syscall.Errno alone would make look like a net.Error).
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrTooLarge) {
		return false
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		switch resp.Code {
		case "SlowDown", "SlowDownRead", "SlowDownWrite", "RequestTimeout", "RequestTimeTooSkewed", "InternalError",
			"ServiceUnavailable", "XMinioServerNotInitialized", "XMinioStorageFull", "OperationTimedOut":
			return true
		}
		switch resp.StatusCode {
		case 408, 429, 500, 502, 503, 504:
			return true
		}
		return false
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &verify) {
		return false // a TLS set-up that will not change by itself
	}
	var oe *net.OpError
	var ue *url.Error
	return errors.As(err, &oe) || errors.As(err, &ue) || errors.Is(err, io.ErrUnexpectedEOF)
}
