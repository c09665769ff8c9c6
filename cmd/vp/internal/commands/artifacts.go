package commands

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newArtifactsCmd() *cobra.Command {
	g := &gatewayFlags{}
	var dir string
	cmd := &cobra.Command{
		Use:   "artifacts ID",
		Short: "List a job's outputs (weights, metrics, checkpoints, log); --download gets them, checking each sha256",
		Example: `  vp artifacts job-0123456789abcdef0123
  vp artifacts job-0123456789abcdef0123 --download ./out`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			arts, err := c.Artifacts(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if dir != "" {
				for _, a := range arts.Artifacts {
					p, err := c.Download(cmd.Context(), a, dir)
					if err != nil {
						return err
					}
					fmt.Fprintln(out, p)
				}
				return nil
			}
			if g.output == "json" {
				return printJSON(out, arts)
			}
			w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tSIZE\tSHA256")
			for _, a := range arts.Artifacts {
				fmt.Fprintf(w, "%s\t%s\t%s\n", a.Name, byteSize(a.Size), a.SHA256)
			}
			if arts.Log != nil {
				fmt.Fprintf(w, "%s\t\t(the run's log)\n", arts.Log.Name)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if len(arts.Artifacts) == 0 {
				fmt.Fprintf(out, "no outputs yet (the run %s)\n", map[bool]string{true: "has not finished", false: arts.RunID}[arts.RunID == ""])
			}
			return nil
		},
	}
	g.add(cmd)
	g.addOutput(cmd)
	cmd.Flags().StringVar(&dir, "download", "", "download every output into this folder")
	return cmd
}
