package dockerapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// ContainerConfig is the body of a container's creation: the fields of
// the engine's container config and host config that this client sets.
type ContainerConfig struct {
	Image      string
	Env        []string          `json:",omitempty"`
	Labels     map[string]string `json:",omitempty"`
	Entrypoint []string          `json:",omitempty"`
	Cmd        []string          `json:",omitempty"`
	HostConfig HostConfig
}

// HostConfig is where the container runs: its network, its limits and
// its devices.
type HostConfig struct {
	// NetworkMode is host, bridge, none or a network's name.
	NetworkMode string `json:",omitempty"`
	// NanoCPUs is the CPU limit in billionths of a CPU.
	NanoCPUs int64 `json:"NanoCpus,omitempty"`
	// Memory is the memory limit in bytes.
	Memory         int64           `json:",omitempty"`
	DeviceRequests []DeviceRequest `json:",omitempty"`
}

// DeviceRequest asks for devices of a driver, as docker run --gpus does:
// DeviceIDs (or Count of any) with the capabilities they must have; the
// engine picks the driver that has them when Driver is empty.
type DeviceRequest struct {
	Driver       string
	Count        int
	DeviceIDs    []string
	Capabilities [][]string
	Options      map[string]string
}

// Container is an entry of the engine's list of containers.
type Container struct {
	ID     string `json:"Id"`
	Names  []string
	Image  string
	Labels map[string]string
	// State is created, running, paused, restarting, removing, exited or
	// dead.
	State string
}

// ContainerJSON is what this client reads of a container's inspection.
type ContainerJSON struct {
	ID    string `json:"Id"`
	Name  string
	Image string
	State struct {
		Status   string
		Running  bool
		ExitCode int
		// FinishedAt is when it last ended (the zero time when it never
		// did), on the engine's clock.
		FinishedAt time.Time
	}
	Config struct {
		Image  string
		Env    []string
		Labels map[string]string
	}
	HostConfig      HostConfig
	NetworkSettings struct {
		Networks map[string]struct {
			IPAddress string
			Gateway   string
		}
	}
}

// Filters select containers: label (key or key=value), status, name, ...;
// the values of one filter are alternatives, filters are all required.
type Filters map[string][]string

// Create creates a container named name (no name: the engine picks one)
// and returns its id. No such image is ErrNotFound, a name in use
// ErrConflict.
func (c *Client) Create(ctx context.Context, name string, cfg ContainerConfig) (string, error) {
	q := url.Values{}
	if name != "" {
		q.Set("name", name)
	}
	var out struct {
		ID string `json:"Id"`
	}
	if _, err := c.call(ctx, http.MethodPost, "/containers/create", q, cfg, &out); err != nil {
		return "", fmt.Errorf("creating container %s: %w", name, err)
	}
	return out.ID, nil
}

// Start starts a container; one already started is left as it is.
func (c *Client) Start(ctx context.Context, id string) error {
	if _, err := c.call(ctx, http.MethodPost, "/containers/"+id+"/start", nil, nil, nil); err != nil {
		return fmt.Errorf("starting container %s: %w", id, err)
	}
	return nil
}

// Kill sends signal (SIGTERM, SIGKILL, ...) to a container's main
// process. A container that is not running is ErrConflict, one that does
// not exist ErrNotFound.
func (c *Client) Kill(ctx context.Context, id, signal string) error {
	q := url.Values{}
	if signal != "" {
		q.Set("signal", signal)
	}
	if _, err := c.call(ctx, http.MethodPost, "/containers/"+id+"/kill", q, nil, nil); err != nil {
		return fmt.Errorf("sending %s to container %s: %w", signal, id, err)
	}
	return nil
}

// Wait waits until a container is not running (at once for one that has
// ended or was never started) and returns its exit code.
func (c *Client) Wait(ctx context.Context, id string) (int, error) {
	var out struct {
		StatusCode int
		Error      *struct{ Message string }
	}
	q := url.Values{"condition": {"not-running"}}
	if _, err := c.call(ctx, http.MethodPost, "/containers/"+id+"/wait", q, nil, &out); err != nil {
		return 0, fmt.Errorf("waiting for container %s: %w", id, err)
	}
	if out.Error != nil && out.Error.Message != "" {
		return out.StatusCode, fmt.Errorf("waiting for container %s: %s", id, out.Error.Message)
	}
	return out.StatusCode, nil
}

// Remove removes a container, killing it first if it runs. One that does
// not exist is ErrNotFound.
func (c *Client) Remove(ctx context.Context, id string) error {
	q := url.Values{"force": {"1"}}
	if _, err := c.call(ctx, http.MethodDelete, "/containers/"+id, q, nil, nil); err != nil {
		return fmt.Errorf("removing container %s: %w", id, err)
	}
	return nil
}

// List lists the containers that match f: the running ones, or all when
// all is set.
func (c *Client) List(ctx context.Context, all bool, f Filters) ([]Container, error) {
	q := url.Values{}
	if all {
		q.Set("all", "1")
	}
	if len(f) > 0 {
		b, err := json.Marshal(f)
		if err != nil {
			return nil, fmt.Errorf("encoding filters: %w", err)
		}
		q.Set("filters", string(b))
	}
	var out []Container
	if _, err := c.call(ctx, http.MethodGet, "/containers/json", q, nil, &out); err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	return out, nil
}

// Inspect describes a container; one that does not exist is ErrNotFound.
func (c *Client) Inspect(ctx context.Context, id string) (*ContainerJSON, error) {
	var out ContainerJSON
	if _, err := c.call(ctx, http.MethodGet, "/containers/"+id+"/json", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("inspecting container %s: %w", id, err)
	}
	return &out, nil
}

// Logs returns what a container (created without a TTY) wrote on its
// stdout and stderr so far, interleaved as it wrote them.
func (c *Client) Logs(ctx context.Context, id string) (string, error) {
	q := url.Values{"stdout": {"1"}, "stderr": {"1"}}
	resp, err := c.do(ctx, http.MethodGet, "/containers/"+id+"/logs", q, nil)
	if err != nil {
		return "", fmt.Errorf("reading the logs of container %s: %w", id, err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	if err := Demux(&out, resp.Body); err != nil {
		return out.String(), fmt.Errorf("reading the logs of container %s: %w", id, err)
	}
	return out.String(), nil
}

// Demux copies the payloads of the engine's multiplexed stream (frames of
// an 8-byte header: the stream, three zero bytes, the size as big-endian
// uint32) to w; a stream that does not start with such a header (a
// container with a TTY) is copied as it is.
func Demux(w io.Writer, r io.Reader) error {
	var h [8]byte
	first := true
	for {
		n, err := io.ReadFull(r, h[:])
		if err == io.EOF {
			return nil
		}
		if first && (n < len(h) || h[0] > 2 || h[1] != 0 || h[2] != 0 || h[3] != 0) {
			if _, werr := w.Write(h[:n]); werr != nil {
				return werr
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			_, err = io.Copy(w, r)
			return err
		}
		if err != nil {
			return fmt.Errorf("reading a frame header: %w", err)
		}
		first = false
		size := int64(binary.BigEndian.Uint32(h[4:]))
		if _, err := io.CopyN(w, r, size); err != nil {
			return fmt.Errorf("reading a frame of %d bytes: %w", size, err)
		}
	}
}
