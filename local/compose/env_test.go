package compose

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/local/up"
)

// TestCredentials: compose reads and makes vp up's credentials.json, in
// vp up's default data folder: the same secrets serve both.
func TestCredentials(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	if got, want := DefaultCredentialsFile(), filepath.Join(up.DefaultDataDir(), "credentials.json"); got != want {
		t.Errorf("DefaultCredentialsFile() = %s, want vp up's %s", got, want)
	}
	p := filepath.Join(t.TempDir(), "data", "credentials.json")
	made, err := LoadCredentials(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("LoadCredentials made %s: %v, mode %v; want 0600", p, err, fi)
	}
	var asUp up.Credentials
	b, _ := os.ReadFile(p)
	if err := json.Unmarshal(b, &asUp); err != nil {
		t.Fatal(err)
	}
	if asUp.MinIOUser != "vp-admin" || asUp.MinIOPassword != made.MinIOPassword || asUp.IntakeToken != made.IntakeToken || asUp.GatewayToken != made.GatewayToken || len(made.MinIOPassword) < 8 {
		t.Errorf("vp up reads %+v from what compose made (%+v)", asUp, made)
	}
	again, err := LoadCredentials(p)
	if err != nil || again != made {
		t.Errorf("LoadCredentials a second time = %+v, %v; want the same %+v", again, err, made)
	}
	read, err := ReadCredentials(p)
	if err != nil || read != made {
		t.Errorf("ReadCredentials = %+v, %v; want %+v", read, err, made)
	}
	if _, err := ReadCredentials(filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Error("ReadCredentials of a missing file = nil error")
	}
}

func TestEnvBytes(t *testing.T) {
	c := Credentials{MinIOUser: "vp-admin", MinIOPassword: "0123456789", IntakeToken: "it", GatewayToken: "gt"}
	b, err := NewEnv(c, "/root/.cache/vision-platform/rootfs", "/usr/local/go", "").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	want := []string{"VP_GATEWAY_TOKEN=gt", "VP_GOROOT=/usr/local/go", "VP_INTAKE_TOKEN=it", "VP_MINIO_PASSWORD=0123456789",
		"VP_MINIO_USER=vp-admin", "VP_ROOTFS_DIR=/root/.cache/vision-platform/rootfs"}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf(".env (-want +got):\n%s", diff)
	}
	if _, err := (Env{"VP_GOROOT": "/a b"}).Bytes(); err == nil {
		t.Error("a value with a blank was written to .env")
	}
}

func TestParseBucket(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Bucket
		err  bool
	}{
		{"runs", Bucket{Name: "runs"}, false},
		{"datasets=vp,vpfast", Bucket{Name: "datasets", Notify: []string{"vp", "vpfast"}}, false},
		{"datasets=", Bucket{Name: "datasets"}, false},
		{"=vp", Bucket{}, true},
	} {
		got, err := ParseBucket(tc.in)
		if (err != nil) != tc.err || !cmp.Equal(tc.want, got) {
			t.Errorf("ParseBucket(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}
