package credentials

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// FileName is the file's name in vp up's data folder.
const FileName = "credentials.json"

// Credentials are the platform's local secrets.
type Credentials struct {
	MinIOUser     string `json:"minioUser"`
	MinIOPassword string `json:"minioPassword"`
	// IntakeToken is the bearer token MinIO's webhook presents to
	// dataset-intake.
	IntakeToken string `json:"intakeToken"`
	// GatewayToken is the gateway's bearer token (write scope), for the
	// console, vp's commands and other systems.
	GatewayToken string `json:"gatewayToken"`
}

// Read reads the credentials file at p.
func Read(p string) (Credentials, error) {
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

// Load reads the credentials file at p, making it (and its folder) the
// first time with new secrets; a file from before the gateway gets a
// gateway token added.
func Load(p string) (Credentials, error) {
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
	return c, Save(p, c)
}

// Save writes c to p (mode 0600), making p's folder.
func Save(p string, c Credentials) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("keeping the credentials: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the credentials: %w", err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return fmt.Errorf("keeping the credentials: %w", err)
	}
	return nil
}

func secret() string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}
