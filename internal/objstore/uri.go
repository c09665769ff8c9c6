package objstore

import (
	"fmt"
	"strings"
)

// URI is an object, or a prefix, in a bucket: s3://bucket/key.
type URI struct{ Bucket, Key string }

// ParseURI splits an s3://bucket/key URI (the key may be empty or a prefix).
func ParseURI(u string) (URI, error) {
	rest, ok := strings.CutPrefix(u, "s3://")
	b, k, _ := strings.Cut(rest, "/")
	if !ok || b == "" {
		return URI{}, fmt.Errorf("%q is not an s3://bucket/key URI", u)
	}
	return URI{b, k}, nil
}

func (u URI) String() string { return "s3://" + u.Bucket + "/" + u.Key }

// Join appends a path to the key, with one slash between them.
func (u URI) Join(p string) URI {
	k := strings.TrimSuffix(u.Key, "/")
	if k != "" {
		k += "/"
	}
	return URI{u.Bucket, k + p}
}
