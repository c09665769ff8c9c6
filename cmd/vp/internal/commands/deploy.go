package commands

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"
)

// ErrNoRepository is vp deploy render's error outside the repository.
var ErrNoRepository = errors.New("no repository here: vp deploy render runs inside the vision-platform repository (a folder with go.mod and infra/go.mod)")

func newDeployCmd(_ *rootFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "The platform on Knative and Kubernetes: render its manifests (infra/)",
	}
	cmd.AddCommand(newDeployRenderCmd())
	return cmd
}

// findRepository is the nearest folder at or above dir that holds the
// repository: go.mod and infra/go.mod.
func findRepository(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		_, e1 := os.Stat(filepath.Join(d, "go.mod"))
		_, e2 := os.Stat(filepath.Join(d, "infra", "go.mod"))
		if e1 == nil && e2 == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", ErrNoRepository
		}
	}
}

func newDeployRenderCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "render [FLAGS]",
		Short: "Render infra/ (Knative Services, Broker, Triggers, RBAC, GPU Job template, kustomize overlays) from each func.yaml",
		Long: `Render the platform's Knative and Kubernetes manifests into infra/ from each
function's func.yaml: a Knative Service per function (its image by digest from
--images, the output of vp images build-functions --images-file, or the
placeholder digest), the Broker with its delivery spec and dead-letter sink,
one Trigger per subscription, the gpu-runner's RBAC, the MinIO webhook Job, the
GPU Job template and the kustomize base and overlays (dev, gpu).

The renderer is the infra module's vp-render (infra/cmd/vp-render): it links
Knative's and Kubernetes' API types, which vp leaves out, so vp builds it with
the Go toolchain (cached after the first build) and runs it; its flags follow
(--help lists them). Paths are relative to the current folder.`,
		Example: `  vp deploy render
  vp deploy render --images infra/images.json --registry registry.example.com/vp
  vp deploy render --check                       # fail when infra/ is not what it renders
  vp deploy render --gpu-node-selector cloud.google.com/gke-accelerator=nvidia-l4`,
		DisableFlagParsing: true,
		SilenceErrors:      true, // vp-render has said why on stderr; vp says its own
		SilenceUsage:       true,
		RunE: func(cmd *cobra.Command, args []string) error {
			fail := func(err error) error {
				fmt.Fprintln(cmd.ErrOrStderr(), "vp deploy render:", err)
				return &ExitError{Code: 1}
			}
			wd, err := os.Getwd()
			if err != nil {
				return fail(err)
			}
			repo, err := findRepository(wd)
			if err != nil {
				return fail(err)
			}
			tmp, err := os.MkdirTemp("", "vp-render-*")
			if err != nil {
				return fail(err)
			}
			defer os.RemoveAll(tmp)
			bin := filepath.Join(tmp, "vp-render")
			build := exec.CommandContext(cmd.Context(), "go", "build", "-o", bin, "./cmd/vp-render")
			build.Dir = filepath.Join(repo, "infra")
			if out, err := build.CombinedOutput(); err != nil {
				return fail(fmt.Errorf("building the renderer (go build ./cmd/vp-render in %s): %w\n%s", build.Dir, err, out))
			}
			// The repository's paths first: the caller's flags, later,
			// win.
			run := exec.CommandContext(cmd.Context(), bin, append([]string{"--root", repo, "--out", filepath.Join(repo, "infra")}, args...)...)
			run.Stdin, run.Stdout, run.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
			if err := run.Run(); err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return &ExitError{Code: ee.ExitCode()}
				}
				return fail(err)
			}
			return nil
		},
	}
}
