package compose

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// File is the compose file, relative to the repository's root.
const File = "local/compose/docker-compose.yml"

// Command finds the compose command: the docker compose plugin where it
// answers, else Debian's docker-compose (1.29).
func Command(ctx context.Context) ([]string, error) {
	for _, c := range [][]string{{"docker", "compose"}, {"docker-compose"}} {
		if _, err := exec.LookPath(c[0]); err != nil {
			continue
		}
		args := append(append([]string(nil), c[1:]...), "version")
		if err := exec.CommandContext(ctx, c[0], args...).Run(); err == nil {
			return c, nil
		}
	}
	return nil, ErrNoCompose
}

// Engine reports whether a Docker Engine answers, and says why not.
func Engine(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w (docker version: %v: %s)", ErrNoEngine, err, bytes.TrimSpace(out))
	}
	return nil
}

// Project is one project of the compose file: its name (-p, and
// COMPOSE_PROJECT_NAME, which names its network), the command that runs
// it, and the variables the file is read with.
type Project struct {
	Name    string
	Command []string // Command's answer
	File    string   // the compose file (absolute)
	Env     map[string]string
}

// NewProject is the project name of the compose file of the repository at
// root, run by command.
func NewProject(command []string, root, name string, env map[string]string) *Project {
	return &Project{Name: name, Command: command, File: filepath.Join(root, File), Env: env}
}

// Run runs the compose command with args and returns its output (standard
// output and error together); a failure says what ran.
func (p *Project) Run(ctx context.Context, args ...string) (string, error) {
	full := append(append(append([]string(nil), p.Command[1:]...), "-p", p.Name, "-f", p.File), args...)
	cmd := exec.CommandContext(ctx, p.Command[0], full...)
	cmd.Env = append(os.Environ(), "COMPOSE_PROJECT_NAME="+p.Name)
	for k, v := range p.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", p.Command[0], strings.Join(full, " "), err, tail(string(out), 40))
	}
	return string(out), nil
}

// Network is the project's network, where the training containers run.
func (p *Project) Network() string { return p.Name + "_platform" }

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
