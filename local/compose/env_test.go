package compose

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/local/credentials"
	"github.com/vision-platform/vp/local/up"
)

// TestCredentialsFile: compose takes vp up's credentials.json, in vp up's
// default data folder: the same secrets serve both (local/credentials
// reads and makes it).
func TestCredentialsFile(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	if got, want := DefaultCredentialsFile(), filepath.Join(up.DefaultDataDir(), credentials.FileName); got != want {
		t.Errorf("DefaultCredentialsFile() = %s, want vp up's %s", got, want)
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
