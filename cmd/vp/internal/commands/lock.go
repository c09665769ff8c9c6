package commands

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/images/spec"
	"github.com/vision-platform/vp/images/wheel"
)

func newImagesLockCmd(f *imagesFlags) *cobra.Command {
	var o wheel.ResolveOptions
	var glibc string
	cmd := &cobra.Command{
		Use:   "lock [NAME...]",
		Short: "Resolve each spec's wheel requirements into its lock file, pinned by sha256 (with pip)",
		Long: `Resolve the requirements file of each wheels layer (all specs that have one when
none is named) with pip's resolver, for the image's Python and platforms, and write
its lock file: name==version with the sha256 of every wheel chosen. pip runs with
--dry-run: nothing is installed. The wheels come from --index, --find-links, or
pip's default index.`,
		Example: `  vp images lock --index https://pypi.org/simple
  vp images lock timm --find-links wheelhouse/`,
		RunE: func(cmd *cobra.Command, names []string) error {
			specs, err := spec.LoadDir(f.specs)
			if err != nil {
				return err
			}
			if len(names) == 0 {
				names = slices.Sorted(maps.Keys(specs))
			}
			done := 0
			for _, n := range names {
				s, ok := specs[n]
				if !ok {
					return fmt.Errorf("no spec named %q in %s", n, f.specs)
				}
				for _, l := range s.Layers {
					if l.Wheels == nil || l.Wheels.Requirements == "" {
						continue
					}
					opts := o
					opts.Platforms = nil
					for _, p := range s.Platforms {
						tag, err := wheel.PlatformTag(p, glibc)
						if err != nil {
							return fmt.Errorf("%s: %w", s.File, err)
						}
						opts.Platforms = append(opts.Platforms, tag)
					}
					in, lock := s.Resolve(l.Wheels.Requirements), s.Resolve(l.Wheels.Lock)
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: resolving %s for python %s on %s\n", n, l.Wheels.Requirements, opts.PythonVersion, strings.Join(opts.Platforms, ", "))
					reqs, err := wheel.Resolve(cmd.Context(), in, opts)
					if err != nil {
						return fmt.Errorf("%s: %w", n, err)
					}
					var b bytes.Buffer
					rel, _ := filepath.Rel(filepath.Dir(lock), in)
					header := fmt.Sprintf("Written by vp images lock from %s\n(python %s; %s).\nEdit the requirements and run vp images lock %s again; do not edit by hand.",
						filepath.ToSlash(rel), opts.PythonVersion, strings.Join(opts.Platforms, ", "), n)
					if err := wheel.WriteLock(&b, header, reqs); err != nil {
						return err
					}
					if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
						return err
					}
					if err := os.WriteFile(lock, b.Bytes(), 0o644); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %s: %d wheels pinned\n", n, lock, len(reqs))
					done++
				}
			}
			if done == 0 {
				return fmt.Errorf("no wheels layer with requirements in %s", strings.Join(names, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Index, "index", "", "PEP 503/691 simple index URL (default: pip's)")
	cmd.Flags().StringSliceVar(&o.FindLinks, "find-links", nil, "directory of wheels to resolve from (repeatable); alone, no index is asked")
	cmd.Flags().StringVar(&o.Python, "python", "/usr/bin/python3", "a Python with pip, to run the resolver")
	cmd.Flags().StringVar(&o.PythonVersion, "python-version", "3.11", "the image's Python version (Debian bookworm's is 3.11)")
	cmd.Flags().StringVar(&glibc, "glibc", "2.36", "the image's glibc version, for manylinux wheels (Debian bookworm's is 2.36)")
	return cmd
}
