package commands

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/internal/testsupport"
	"github.com/vision-platform/vp/local/demo"
)

// TestDemoCredentials: the flags (or their environment) win; what they
// leave empty comes from vp up's credentials.json; with neither, the error
// says what to pass.
func TestDemoCredentials(t *testing.T) {
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "credentials.json"), []byte(`{"minioUser":"vp-admin","minioPassword":"from-file-secret","intakeToken":"i","gatewayToken":"file-token"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc string
		in   demo.Config
		data string
		want demo.Config
		err  string
	}{
		{"all from the file", demo.Config{}, data, demo.Config{MinIOUser: "vp-admin", MinIOPassword: "from-file-secret", Token: "file-token"}, ""},
		{"a flag wins", demo.Config{Token: "flag-token"}, data, demo.Config{MinIOUser: "vp-admin", MinIOPassword: "from-file-secret", Token: "flag-token"}, ""},
		{"all flags, no file", demo.Config{MinIOUser: "u", MinIOPassword: "p", Token: "t"}, t.TempDir(), demo.Config{MinIOUser: "u", MinIOPassword: "p", Token: "t"}, ""},
		{"neither", demo.Config{}, t.TempDir(), demo.Config{}, "pass --minio-user, --minio-password and --token"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c := tc.in
			err := demoCredentials(&c, tc.data)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("demoCredentials() = %v, want an error saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, c); diff != "" {
				t.Errorf("demoCredentials() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDemoNoPlatform: with nothing running, vp demo says so before it
// makes or uploads anything.
func TestDemoNoPlatform(t *testing.T) {
	out, err := run(context.Background(), "", "demo", "--gateway", "http://"+testsupport.FreeAddr(t), "--token", "t",
		"--minio", testsupport.FreeAddr(t), "--minio-user", "u", "--minio-password", "password")
	if err == nil || !strings.Contains(err.Error(), "is vp up or make compose-up running?") {
		t.Errorf("vp demo with nothing running = %v\n%s", err, out)
	}
	if strings.Contains(out, "uploaded") {
		t.Errorf("vp demo uploaded with nothing running:\n%s", out)
	}
}
