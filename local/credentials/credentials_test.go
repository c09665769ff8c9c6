package credentials

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadMakesThenKeeps(t *testing.T) {
	p := filepath.Join(t.TempDir(), "data", FileName)
	made, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("Load made %s: %v, mode %v; want 0600", p, err, fi)
	}
	if made.MinIOUser != "vp-admin" || len(made.MinIOPassword) < 8 || made.IntakeToken == "" || made.GatewayToken == "" || made.IntakeToken == made.GatewayToken {
		t.Errorf("made %+v", made)
	}
	again, err := Load(p)
	if err != nil || again != made {
		t.Errorf("Load a second time = %+v, %v; want the same %+v", again, err, made)
	}
	read, err := Read(p)
	if err != nil || read != made {
		t.Errorf("Read = %+v, %v; want %+v", read, err, made)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Error("Read of a missing file = nil error")
	}
}

func TestLoadOlderAndBadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// From before the gateway: a token is added and kept.
	old := write("old.json", `{"minioUser":"u","minioPassword":"12345678","intakeToken":"it"}`)
	c, err := Load(old)
	if err != nil || c.MinIOUser != "u" || c.IntakeToken != "it" || c.GatewayToken == "" {
		t.Fatalf("Load(older file) = %+v, %v", c, err)
	}
	if kept, err := Read(old); err != nil || kept != c {
		t.Errorf("the added gateway token was not kept: %+v, %v", kept, err)
	}
	for name, content := range map[string]string{
		"short.json":  `{"minioUser":"u","minioPassword":"short","intakeToken":"it"}`,
		"broken.json": `{"minioUser":`,
	} {
		if _, err := Load(write(name, content)); err == nil || !strings.Contains(err.Error(), "remove it to make new credentials") {
			t.Errorf("Load(%s) = %v, want an error saying to remove it", name, err)
		}
	}
}
