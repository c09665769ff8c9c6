package up

import (
	"path/filepath"

	"github.com/vision-platform/vp/local/credentials"
)

// Credentials are the secrets vp up makes once and keeps in its data
// folder, so that a second vp up finds the same MinIO and the same webhook
// (local/credentials).
type Credentials = credentials.Credentials

// GatewayTokenName is the name of the gateway token vp up makes.
const GatewayTokenName = "vp-up"

// loadCredentials reads dir/credentials.json, making it (mode 0600) the
// first time.
func loadCredentials(dir string) (Credentials, error) {
	return credentials.Load(filepath.Join(dir, credentials.FileName))
}
