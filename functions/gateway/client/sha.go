package client

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
)

func newSHA256() hash.Hash { return sha256.New() }

func sha256Of(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
