package dockerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/distribution/reference"
)

// ImageExists reports whether the engine has the image ref (a name with a
// tag or a digest, as the engine names it).
func (c *Client) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := c.call(ctx, http.MethodGet, "/images/"+ref+"/json", nil, nil, nil)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking for image %s: %w", ref, err)
	}
	return true, nil
}

// PullParams are the repository and the tag (or digest) the engine's
// pull takes for ref: a reference by digest pulls the digest, one without
// a tag or digest pulls latest.
func PullParams(ref string) (repo, tag string, err error) {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", "", fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	repo = reference.FamiliarName(n)
	switch r := n.(type) {
	case reference.Digested:
		return repo, r.Digest().String(), nil
	case reference.Tagged:
		return repo, r.Tag(), nil
	}
	return repo, "latest", nil
}

// progress is one message of a pull's stream.
type progress struct {
	Status      string `json:"status"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// Pull pulls ref from its registry (anonymously), reading the engine's
// progress stream to its end: an error the stream reports (the engine
// answers 200 before the pull fails) is ErrPull with the engine's
// message.
func (c *Client) Pull(ctx context.Context, ref string) error {
	repo, tag, err := PullParams(ref)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPost, "/images/create", url.Values{"fromImage": {repo}, "tag": {tag}}, nil)
	if err != nil {
		return fmt.Errorf("pulling %s: %w", ref, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	last := ""
	for {
		var m progress
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("pulling %s: reading the engine's progress: %w", ref, err)
		}
		msg := m.Error
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			msg = m.ErrorDetail.Message
		}
		if msg != "" {
			return fmt.Errorf("pulling %s: %w: %s", ref, ErrPull, msg)
		}
		if m.Status != "" {
			last = m.Status
		}
	}
	if last == "" {
		return fmt.Errorf("pulling %s: %w: the engine reported nothing", ref, ErrPull)
	}
	return nil
}

// RemoveImage removes an image (forced, as docker rmi -f); one that does
// not exist is ErrNotFound.
func (c *Client) RemoveImage(ctx context.Context, ref string) error {
	if _, err := c.call(ctx, http.MethodDelete, "/images/"+ref, url.Values{"force": {"1"}}, nil, nil); err != nil {
		return fmt.Errorf("removing image %s: %w", ref, err)
	}
	return nil
}
