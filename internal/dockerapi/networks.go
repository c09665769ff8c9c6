package dockerapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// CreateNetwork creates a bridge network and returns its id: for tests
// and tools (the executor joins networks that exist).
func (c *Client) CreateNetwork(ctx context.Context, name string) (string, error) {
	body := map[string]any{"Name": name, "Driver": "bridge", "CheckDuplicate": true}
	var out struct {
		ID string `json:"Id"`
	}
	if _, err := c.call(ctx, http.MethodPost, "/networks/create", nil, body, &out); err != nil {
		return "", fmt.Errorf("creating network %s: %w", name, err)
	}
	return out.ID, nil
}

// NetworkGateway is the gateway address of a network's first subnet.
func (c *Client) NetworkGateway(ctx context.Context, name string) (string, error) {
	var out struct {
		IPAM struct {
			Config []struct{ Subnet, Gateway string }
		}
	}
	if _, err := c.call(ctx, http.MethodGet, "/networks/"+name, nil, nil, &out); err != nil {
		return "", fmt.Errorf("inspecting network %s: %w", name, err)
	}
	for _, cfg := range out.IPAM.Config {
		if gw, _, _ := strings.Cut(cfg.Gateway, "/"); gw != "" {
			return gw, nil
		}
	}
	return "", fmt.Errorf("network %s has no gateway", name)
}

// RemoveNetwork removes a network; one that does not exist is
// ErrNotFound.
func (c *Client) RemoveNetwork(ctx context.Context, name string) error {
	if _, err := c.call(ctx, http.MethodDelete, "/networks/"+name, nil, nil, nil); err != nil {
		return fmt.Errorf("removing network %s: %w", name, err)
	}
	return nil
}
