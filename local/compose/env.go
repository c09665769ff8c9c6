package compose

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vision-platform/vp/local/credentials"
)

// Credentials are vp up's secrets (its data folder's credentials.json):
// compose takes the same ones, so that vp demo, vp jobs and the console
// work the same with either (credentials.Load makes them the first time).
type Credentials = credentials.Credentials

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
