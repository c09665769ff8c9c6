package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/images/assemble"
	"github.com/vision-platform/vp/images/imagespec"
	"github.com/vision-platform/vp/images/publish"
)

type imagesFlags struct {
	specs string
	cache string
}

func defaultCacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "vision-platform", "images")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "vision-platform", "images")
}

func newImagesCmd(rf *rootFlags) *cobra.Command {
	f := &imagesFlags{}
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Build, list and inspect the framework images (no Docker daemon)",
	}
	cmd.PersistentFlags().StringVar(&f.specs, "specs", "images/frameworks", "directory of image specs")
	cmd.PersistentFlags().StringVar(&f.cache, "cache", defaultCacheDir(), "layer cache (an OCI layout)")
	cmd.AddCommand(newImagesBuildCmd(f), newImagesLsCmd(f), newImagesInspectCmd(f), newImagesLockCmd(f))
	return cmd
}

func newImagesBuildCmd(f *imagesFlags) *cobra.Command {
	var registry, output, tag string
	var insecure, quiet bool
	cmd := &cobra.Command{
		Use:   "build [NAME...]",
		Short: "Build specs (all when none is named), optionally push or export them",
		Example: `  vp images build timm --registry 127.0.0.1:5000/vp
  vp images build torchvision --output tar:torchvision.tar && docker load -i torchvision.tar`,
		RunE: func(cmd *cobra.Command, names []string) error {
			specs, err := imagespec.LoadDir(f.specs)
			if err != nil {
				return err
			}
			if len(names) == 0 {
				names = slices.Sorted(maps.Keys(specs))
			}
			if strings.HasPrefix(output, "tar:") && len(names) != 1 {
				return fmt.Errorf("--output tar: takes one image, got %d", len(names))
			}
			cache, err := assemble.OpenCache(f.cache)
			if err != nil {
				return err
			}
			opts := []assemble.Option{assemble.WithProgress(progressPrinter(cmd.ErrOrStderr(), quiet))}
			if output != "" {
				opts = append(opts, assemble.WithOutput(output))
			}
			if tag != "" {
				opts = append(opts, assemble.WithTarTag(tag))
			}
			if registry != "" {
				pub, err := publish.New(publish.WithMountIndex(filepath.Join(f.cache, "mounts.json")))
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
			out := cmd.OutOrStdout()
			for _, n := range names {
				r, err := b.Build(cmd.Context(), n)
				if err != nil {
					return flagError(err)
				}
				fmt.Fprintf(out, "%s\t%s\t%d layers, %d built, %s\n", n, r.Digest, len(r.Layers), r.Built, r.Duration.Round(time.Millisecond))
				if r.Reference != "" {
					fmt.Fprintf(out, "%s\tpushed %s\t%s pushed, %s reused\n", n, r.Reference, human(r.BytesPushed), human(r.BytesReused))
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&registry, "registry", "", "push to HOST[:PORT]/REPO (each image as REPO/NAME:latest)")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "talk plain HTTP to the registry (loopback registries always do)")
	cmd.Flags().StringVar(&output, "output", "", "also write oci:DIR (an OCI layout) or tar:FILE (for docker load)")
	cmd.Flags().StringVar(&tag, "tag", "", "tag of a tar: output (default vp/NAME:latest)")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress lines")
	return cmd
}

// buildFlags names the flag that sets each field of the builder's options.
var buildFlags = map[string]string{
	assemble.FieldRepository: "--registry",
	assemble.FieldOutput:     "--output",
	assemble.FieldTag:        "--tag",
}

// flagError says a builder's *assemble.FieldError in terms of the flag
// that set the field.
func flagError(err error) error {
	var fe *assemble.FieldError
	if errors.As(err, &fe) {
		if flag, ok := buildFlags[fe.Field]; ok {
			return fmt.Errorf("%s %q: %w", flag, fe.Value, fe.Err)
		}
	}
	return err
}

func progressPrinter(w io.Writer, quiet bool) func(assemble.Event) {
	return func(e assemble.Event) {
		if quiet {
			return
		}
		switch e.Phase {
		case assemble.PhaseDownloaded:
			fmt.Fprintf(w, "  %-12s %-24s fetched %s %s\n", e.Spec, e.Layer, e.Reference, human(e.Size))
		case assemble.PhaseCached:
			fmt.Fprintf(w, "  %-12s %-24s cached  %s\n", e.Spec, e.Layer, human(e.Size))
		case assemble.PhaseBuilt:
			fmt.Fprintf(w, "  %-12s %-24s built   %s\n", e.Spec, e.Layer, human(e.Size))
		case assemble.PhaseProgress:
			fmt.Fprintf(w, "  %-12s %-24s ...     %s read\n", e.Spec, e.Layer, human(e.Size))
		case assemble.PhaseWritten:
			fmt.Fprintf(w, "  %-12s written to %s\n", e.Spec, e.Reference)
		}
	}
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func newImagesLsCmd(f *imagesFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the specs and what has been built of them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			specs, err := imagespec.LoadDir(f.specs)
			if err != nil {
				return err
			}
			// A cache that cannot be read lists nothing as built.
			digests := map[string]string{}
			if cache, err := assemble.OpenCache(f.cache); err == nil {
				if built, err := cache.Images(); err == nil {
					for _, b := range built {
						if d, err := b.Artifact.Digest(); err == nil {
							digests[b.Name] = d.String()
						}
					}
				}
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tBASE\tFRAMEWORK\tPLATFORMS\tLAYERS\tBUILT")
			for _, n := range slices.Sorted(maps.Keys(specs)) {
				s := specs[n]
				base := s.Base.Spec
				switch {
				case s.Base.Scratch:
					base = "scratch"
				case s.Base.Image != "":
					base = s.Base.Image
				case s.Base.Rootfs != "":
					base = "rootfs " + filepath.Base(s.Base.Rootfs)
				case s.Base.Layout != "":
					base = "layout " + s.Base.Layout
				}
				d := digests[n]
				if d == "" {
					d = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", n, base, s.Framework, strings.Join(s.Platforms, ","), len(s.Layers), d)
			}
			return tw.Flush()
		},
	}
}

func newImagesInspectCmd(f *imagesFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect NAME",
		Short: "Show a built image's layers, sizes and the bytes it shares with the others",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cache, err := assemble.OpenCache(f.cache)
			if err != nil {
				return err
			}
			in, err := cache.Inspect(args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(in)
			}
			fmt.Fprintf(out, "%s %s (%s)\n", in.Name, in.Digest, in.Platform)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "LAYER\tDIGEST\tSIZE\tSHARED WITH")
			for _, l := range in.Layers {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l.Name, l.Digest[:19], human(l.Size), strings.Join(l.SharedBy, ","))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(out, "total %s, shared with other images %s\n", human(in.TotalBytes), human(in.SharedBytes))
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
