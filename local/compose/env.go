package compose

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Credentials are vp up's secrets (its data folder's credentials.json,
// the same JSON as local/up's Credentials): compose takes the same ones,
// so that vp demo, vp jobs and the console work the same with either.
type Credentials struct {
	MinIOUser     string `json:"minioUser"`
	MinIOPassword string `json:"minioPassword"`
	IntakeToken   string `json:"intakeToken"`
	GatewayToken  string `json:"gatewayToken"`
}

// ReadCredentials reads vp up's credentials.json at p.
func ReadCredentials(p string) (Credentials, error) {
	var c Credentials
	b, err := os.ReadFile(p)
	if err != nil {
		return c, fmt.Errorf("reading vp up's credentials: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("reading %s: %w", p, err)
	}
	return c, nil
}

// LoadCredentials reads vp up's credentials.json at p, making it (mode
// 0600, as vp up makes it) when there is none; one without a gateway token
// gets one.
func LoadCredentials(p string) (Credentials, error) {
	var c Credentials
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &c); err != nil {
			return c, fmt.Errorf("reading %s: %w (remove it to make new credentials)", p, err)
		}
		if c.MinIOUser == "" || len(c.MinIOPassword) < 8 || c.IntakeToken == "" {
			return c, fmt.Errorf("%s is incomplete (remove it to make new credentials)", p)
		}
		if c.GatewayToken != "" {
			return c, nil
		}
		c.GatewayToken = secret()
	case errors.Is(err, os.ErrNotExist):
		c = Credentials{MinIOUser: "vp-admin", MinIOPassword: secret(), IntakeToken: secret(), GatewayToken: secret()}
	default:
		return c, fmt.Errorf("reading %s: %w", p, err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return c, fmt.Errorf("keeping the credentials: %w", err)
	}
	b, err = json.MarshalIndent(c, "", "  ")
	if err != nil {
		return c, fmt.Errorf("encoding the credentials: %w", err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return c, fmt.Errorf("keeping the credentials: %w", err)
	}
	return c, nil
}

func secret() string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// Env are the variables of the compose file's .env.
type Env map[string]string

// NewEnv is the .env of a project with these credentials, and the host
// paths the image-builder mounts: the Debian root filesystems (rootfs),
// the Go toolchain (goroot) and module cache (gomodcache).
func NewEnv(c Credentials, rootfs, goroot, gomodcache string) Env {
	return Env{
		"VP_MINIO_USER":     c.MinIOUser,
		"VP_MINIO_PASSWORD": c.MinIOPassword,
		"VP_INTAKE_TOKEN":   c.IntakeToken,
		"VP_GATEWAY_TOKEN":  c.GatewayToken,
		"VP_ROOTFS_DIR":     rootfs,
		"VP_GOROOT":         goroot,
		"VP_GOMODCACHE":     gomodcache,
	}
}

// Bytes is the .env file: KEY=VALUE lines, sorted. Values are written as
// they are (docker-compose 1.29 and the plugin read them differently when
// quoted); one that holds a newline or a # is refused.
func (e Env) Bytes() ([]byte, error) {
	var b strings.Builder
	b.WriteString("# Made by make compose-up (vp-compose env): the credentials of vp up's\n# credentials.json and this host's paths. Not to be committed.\n")
	keys := make([]string, 0, len(e))
	for k, v := range e {
		if v != "" { // unset: the compose file's default
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := e[k]
		if strings.ContainsAny(v, "\n\r#\"'$ ") {
			return nil, fmt.Errorf("%s: %q cannot be written to a .env file as it is", k, v)
		}
		fmt.Fprintf(&b, "%s=%s\n", k, v)
	}
	return []byte(b.String()), nil
}

// DefaultCredentialsFile is vp up's credentials.json in its default data
// folder: $XDG_DATA_HOME/vision-platform, else
// ~/.local/share/vision-platform (local/up's DefaultDataDir).
func DefaultCredentialsFile() string {
	dir := ".vision-platform"
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		dir = filepath.Join(d, "vision-platform")
	} else if home, err := os.UserHomeDir(); err == nil {
		dir = filepath.Join(home, ".local", "share", "vision-platform")
	}
	return filepath.Join(dir, "credentials.json")
}
