package up

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/internal/testsupport"
)

// TestRunProblems: what stops vp up is said as what to do, naming the
// flag or the make target, not as a stack trace.
func TestRunProblems(t *testing.T) {
	root := testsupport.ModuleRoot(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	base := func() Config {
		return Config{
			DataDir: t.TempDir(), BrokerAddr: testsupport.FreeAddr(t), DisplayAddr: testsupport.FreeAddr(t),
			RegistryAddr: testsupport.FreeAddr(t), FunctionsPort: -1, MinIOBinary: "/bin/true",
			Specs: filepath.Join(root, "images", "frameworks"), SDK: filepath.Join(root, "images", "python"),
			Executor: "docker", // no Python check unless a case asks for it
		}
	}
	cases := []struct {
		desc string
		edit func(*Config)
		want []string
	}{
		{"a port in use", func(c *Config) { c.RegistryAddr = busy.Addr().String() }, []string{"cannot listen on " + busy.Addr().String(), "--registry-addr"}},
		{"the broker's port in use", func(c *Config) { c.BrokerAddr = busy.Addr().String() }, []string{"the broker", "--broker-addr"}},
		{"no image specs", func(c *Config) { c.Specs = filepath.Join(t.TempDir(), "nope") }, []string{"no image specs", "--specs"}},
		{"a Python without torch", func(c *Config) { c.Executor, c.Python = "process", "/bin/false" }, []string{"cannot import torch", "make deps", "--executor docker"}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			cfg := base()
			c.edit(&cfg)
			err := Run(context.Background(), cfg, zerolog.Nop())
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("Run() = %v, want a *Problem", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Run() = %q, want it to say %q", err, w)
				}
			}
		})
	}
}
