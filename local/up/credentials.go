package up

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Credentials are the secrets vp up makes once and keeps in its data
// folder, so that a second vp up finds the same MinIO and the same webhook.
type Credentials struct {
	MinIOUser     string `json:"minioUser"`
	MinIOPassword string `json:"minioPassword"`
	// IntakeToken is the bearer token MinIO's webhook presents to
	// dataset-intake.
	IntakeToken string `json:"intakeToken"`
	// GatewayToken is the gateway's bearer token (write scope, named
	// GatewayTokenName), for the console, vp's commands and other systems.
	GatewayToken string `json:"gatewayToken"`
}

// GatewayTokenName is the name of the gateway token vp up makes.
const GatewayTokenName = "vp-up"

// loadCredentials reads dir/credentials.json, making it (mode 0600) the
// first time.
func loadCredentials(dir string) (Credentials, error) {
	p := filepath.Join(dir, "credentials.json")
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
		// Kept by a vp up from before the gateway: add its token.
		c.GatewayToken = secret()
		return c, saveCredentials(p, c)
	case !errors.Is(err, os.ErrNotExist):
		return c, fmt.Errorf("reading %s: %w", p, err)
	}
	c = Credentials{MinIOUser: "vp-admin", MinIOPassword: secret(), IntakeToken: secret(), GatewayToken: secret()}
	return c, saveCredentials(p, c)
}

func saveCredentials(p string, c Credentials) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
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
