package commands

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/images/assemble"
	"github.com/vision-platform/vp/images/imagespec"
)

func newImagesLockCmd(f *imagesFlags) *cobra.Command {
	var o assemble.LockOptions
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
			specs, err := imagespec.LoadDir(f.specs)
			if err != nil {
				return err
			}
			errw := cmd.ErrOrStderr()
			o.Progress = func(e assemble.LockEvent) {
				fmt.Fprintf(errw, "%s: resolving %s for python %s on %s\n", e.Spec, e.Requirements, e.PythonVersion, strings.Join(e.Platforms, ", "))
			}
			locked, err := assemble.Lock(cmd.Context(), specs, names, o)
			for _, l := range locked {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s: %d wheels pinned\n", l.Spec, l.Lock, l.Wheels)
			}
			if errors.Is(err, assemble.ErrNoSpec) {
				return fmt.Errorf("%w in %s", err, f.specs)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&o.Resolve.Index, "index", "", "PEP 503/691 simple index URL (default: pip's)")
	cmd.Flags().StringSliceVar(&o.Resolve.FindLinks, "find-links", nil, "directory of wheels to resolve from (repeatable); alone, no index is asked")
	cmd.Flags().StringVar(&o.Resolve.Python, "python", "/usr/bin/python3", "a Python with pip, to run the resolver")
	cmd.Flags().StringVar(&o.Resolve.PythonVersion, "python-version", "3.11", "the image's Python version (Debian bookworm's is 3.11)")
	cmd.Flags().StringVar(&o.Glibc, "glibc", "2.36", "the image's glibc version, for manylinux tags (Debian bookworm's is 2.36)")
	return cmd
}
