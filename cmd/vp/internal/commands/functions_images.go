package commands

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/images/assemble"
	"github.com/vision-platform/vp/images/imagespec"
	"github.com/vision-platform/vp/images/publish"
)

// FunctionSpecs is where the function image specs are (images/functions).
const FunctionSpecs = "images/functions"

// withFunctionImages adds build-functions to the images command.
func withFunctionImages(images *cobra.Command) *cobra.Command {
	images.AddCommand(newBuildFunctionsCmd())
	return images
}

// functionSpecNames are the specs that are functions: every spec that no
// other spec builds on (the base is not one).
func functionSpecNames(specs map[string]*imagespec.Spec) []string {
	bases := map[string]bool{}
	for _, s := range specs {
		if s.Base.Spec != "" {
			bases[s.Base.Spec] = true
		}
	}
	var out []string
	for _, n := range slices.Sorted(maps.Keys(specs)) {
		if !bases[n] {
			out = append(out, n)
		}
	}
	return out
}

func newBuildFunctionsCmd() *cobra.Command {
	var registry, imagesFile string
	var insecure, quiet bool
	cmd := &cobra.Command{
		Use:   "build-functions [NAME...]",
		Short: "Build the functions' images (all when none is named), push them by digest",
		Long: `Build each function's image from its spec in images/functions (--specs to use
another folder): the function's Go binary, built as ko builds it (CGO_ENABLED=0,
-trimpath), on a base made from files (a non-root user 65532, this machine's CA
certificates), for linux/amd64 and linux/arm64 (an image index). Builds are
reproducible: the same sources give the same digest from any cache.

With --registry each image is pushed to REPO/NAME (tag latest) and printed by
digest; --images-file writes the references for vp deploy render --images.`,
		Example: `  vp images build-functions --registry 127.0.0.1:5000/vp --images-file infra/images.json
  vp deploy render --images infra/images.json`,
		RunE: func(cmd *cobra.Command, names []string) error {
			specsDir, err := cmd.Flags().GetString("specs")
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("specs") {
				specsDir = FunctionSpecs
			}
			cacheDir, err := cmd.Flags().GetString("cache")
			if err != nil {
				return err
			}
			if imagesFile != "" && registry == "" {
				return fmt.Errorf("--images-file needs --registry: it lists the pushed references")
			}
			specs, err := imagespec.LoadDir(specsDir)
			if err != nil {
				return err
			}
			all := functionSpecNames(specs)
			if len(all) == 0 {
				return fmt.Errorf("--specs %s: no function image specs", specsDir)
			}
			if len(names) == 0 {
				names = all
			}
			for _, n := range names {
				if !slices.Contains(all, n) {
					return fmt.Errorf("%s is not a function image spec in %s (have %v)", n, specsDir, all)
				}
			}
			cache, err := assemble.OpenCache(cacheDir)
			if err != nil {
				return err
			}
			opts := []assemble.Option{assemble.WithProgress(progressPrinter(cmd.ErrOrStderr(), quiet))}
			if registry != "" {
				pub, err := publish.New(publish.WithMountIndex(filepath.Join(cacheDir, "mounts.json")))
				if err != nil {
					return err
				}
				var nameOpts []name.Option
				if insecure {
					nameOpts = append(nameOpts, name.Insecure)
				}
				opts = append(opts, assemble.WithPush(pub, registry, nameOpts...))
			}
			b, err := assemble.New(cache, specs, opts...)
			if err != nil {
				return flagError(err)
			}
			refs := map[string]string{}
			out := cmd.OutOrStdout()
			for _, n := range names {
				r, err := b.Build(cmd.Context(), n)
				if err != nil {
					return flagError(err)
				}
				fmt.Fprintf(out, "%s\t%s\t%d layers, %d built, %s\n", n, r.Digest, len(r.Layers), r.Built, r.Duration.Round(time.Millisecond))
				if r.Reference != "" {
					refs[n] = r.Reference
					fmt.Fprintf(out, "%s\tpushed %s\t%s pushed, %s reused\n", n, r.Reference, human(r.BytesPushed), human(r.BytesReused))
				}
			}
			if imagesFile != "" {
				return writeImagesFile(imagesFile, refs)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&registry, "registry", "", "push to HOST[:PORT]/REPO (each image as REPO/NAME, printed by digest)")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "talk plain HTTP to the registry (loopback registries always do)")
	cmd.Flags().StringVar(&imagesFile, "images-file", "", "write the pushed references (JSON: function name to REPO/NAME@sha256:...) here, for vp deploy render --images")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress lines")
	return cmd
}

// writeImagesFile writes refs as a JSON object, adding to the references
// of other functions the file already lists.
func writeImagesFile(file string, refs map[string]string) error {
	all := map[string]string{}
	if b, err := os.ReadFile(file); err == nil {
		if err := json.Unmarshal(b, &all); err != nil {
			return fmt.Errorf("--images-file %s: %w", file, err)
		}
	} else if !os.IsNotExist(err) {
		return fmt.Errorf("--images-file: %w", err)
	}
	maps.Copy(all, refs)
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the image references: %w", err)
	}
	if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("--images-file: %w", err)
	}
	return nil
}
