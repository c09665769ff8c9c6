package compose

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Probe asks url once and returns nil when it answers 200: the health
// check of containers that have nothing else to run (the functions' images
// are FROM scratch).
func Probe(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probing %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probing %s: %w", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probing %s: %s", url, resp.Status)
	}
	return nil
}
