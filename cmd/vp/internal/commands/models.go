package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/functions/gateway/client"
	"github.com/vision-platform/vp/registry"
)

// gatewayFlags are the flags every command of the gateway's API takes.
type gatewayFlags struct {
	url, token string
	output     string
}

func (g *gatewayFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&g.url, "gateway", envOr("VP_GATEWAY", "http://127.0.0.1:8088"), "the gateway's URL (env VP_GATEWAY)")
	f.StringVar(&g.token, "token", os.Getenv("VP_TOKEN"), "bearer token (env VP_TOKEN; vp up prints one)")
}

func (g *gatewayFlags) addOutput(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&g.output, "output", "o", "table", "table or json")
}

// client is the API client the flags name; its errors name the flags.
func (g *gatewayFlags) client() (*client.Client, error) {
	if g.output != "" && g.output != "table" && g.output != "json" {
		return nil, fmt.Errorf("--output: %q is not table or json", g.output)
	}
	c, err := client.New(g.url, g.token)
	switch {
	case errors.Is(err, client.ErrNoToken):
		return nil, errors.New("--token: required (or VP_TOKEN): the gateway takes bearer tokens; vp up prints one")
	case errors.Is(err, client.ErrGatewayURL):
		return nil, fmt.Errorf("--gateway: %q is not an http(s) URL (or set VP_GATEWAY)", g.url)
	}
	return c, err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newModelsCmd() *cobra.Command {
	g := &gatewayFlags{}
	var q registry.Query
	cmd := &cobra.Command{
		Use:   "models",
		Short: "List the catalog's models (through the gateway)",
		Example: `  vp models
  vp models --framework timm --task classification
  vp models --tag detection -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			return listModels(cmd.Context(), c, q, g.output, cmd.OutOrStdout())
		},
	}
	g.add(cmd)
	g.addOutput(cmd)
	f := cmd.Flags()
	f.StringVar(&q.Framework, "framework", "", "only this framework image (timm, ultralytics, huggingface, torchvision, custom, ...)")
	f.StringVar(&q.Task, "task", "", "only this task (classification, detection, segmentation, pose, ...)")
	f.StringVar(&q.Tag, "tag", "", "only models with this tag")
	f.StringVar(&q.Text, "q", "", "text in the name, description or tags")
	return cmd
}

func listModels(ctx context.Context, c *client.Client, q registry.Query, output string, out io.Writer) error {
	l, err := c.Models(ctx, q)
	if err != nil {
		return err
	}
	if output == "json" {
		return printJSON(out, l)
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "MODEL\tTASK\tPARAMS\tINPUT\tRECOMMENDED\tSTATUS")
	for _, m := range l.Models {
		params := "-"
		if m.ParamsMillions > 0 {
			params = fmt.Sprintf("%.3gM", m.ParamsMillions)
		}
		input := "config"
		switch {
		case m.Input.Size > 0:
			input = fmt.Sprint(m.Input.Size)
		case m.Input.Height > 0:
			input = fmt.Sprintf("%dx%d", m.Input.Height, m.Input.Width)
		}
		if m.Input.Fixed {
			input += " fixed"
		}
		task := m.Task
		if m.Variant != "" {
			task += "/" + m.Variant
		}
		status := m.Status
		if !m.Ready() && m.Reason != "" {
			status += ": " + firstLine(m.Reason, 60)
		}
		fmt.Fprintf(w, "%s/%s\t%s\t%s\t%s\t%d ep, bs %d, lr %g\t%s\n", m.Framework, m.Name, task, params, input,
			m.Recommended.Epochs, m.Recommended.BatchSize, m.Recommended.LearningRate, status)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "%d of %d models\n", l.Count, l.Total)
	return nil
}

func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > n {
		s = s[:n-1] + "…"
	}
	return s
}
