package console

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/vision-platform/vp/functions/gateway/api"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/registry"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Page is what every page has: its title, the active section, and the
// caller.
type Page struct {
	Title  string
	Active string // models, jobs, compare, datasets, images
	User   string // the token's name
	Write  bool   // the token may start and cancel jobs and upload
}

// Facet is one value of a filter, with the number of models having it.
type Facet struct {
	Value    string
	Count    int
	Selected bool
}

// Card is one model of the model selector; Hidden when the filters leave
// it out (the page's script shows it again when they change).
type Card struct {
	registry.Model
	Hidden bool
}

// DatasetOption is an uploaded dataset a job can train on.
type DatasetOption struct {
	Name, Bucket, Prefix, Digest, Task, Format string
}

// ModelsPage is the model selector.
type ModelsPage struct {
	Page
	Cards                   []Card
	Count, Total            int
	Frameworks, Tasks, Tags []Facet
	Query                   registry.Query
	Datasets                []DatasetOption
}

// JobsPage is the list of jobs.
type JobsPage struct {
	Page
	Jobs   []api.JobSummary
	Next   string
	State  string
	States []string
}

// JobPage is one job: its timeline, lineage, curves (drawn by the page's
// script from the stream) and outputs.
type JobPage struct {
	Page
	Job       ledger.JobStatus
	Dataset   *ledger.DatasetStatus
	Artifacts []api.Artifact
	Log       *api.Artifact
	Terminal  bool
}

// ComparePage sets runs side by side.
type ComparePage struct {
	Page
	Jobs    []ledger.JobStatus
	Metrics []string
	Recent  []api.JobSummary
}

// DatasetsPage lists datasets and uploads a folder.
type DatasetsPage struct {
	Page
	Datasets []ledger.DatasetStatus
	Models   []registry.Model
	Tasks    []string
	Formats  []string
}

// ImagesPage lists the framework images.
type ImagesPage struct {
	Page
	api.Images
}

// LoginPage asks for a token.
type LoginPage struct {
	Page
	Next, Error string
}

var funcs = template.FuncMap{
	"bytes": HumanBytes,
	"short": func(s string) string {
		if i := strings.Index(s, "sha256:"); i >= 0 && len(s) >= i+7+12 {
			return s[:i] + "sha256:" + s[i+7:i+7+12]
		}
		return s
	},
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	"iso":       func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"join":      strings.Join,
	"shortType": func(t string) string { return strings.TrimPrefix(t, "dev.visionplatform.") },
	"metric":    func(v float64) string { return fmt.Sprintf("%.4g", v) },
	"params": func(m float64) string {
		if m == 0 {
			return "—"
		}
		return fmt.Sprintf("%.3g M", m)
	},
	"input": func(in registry.Input) string {
		switch {
		case in.Size > 0:
			return fmt.Sprintf("%d px", in.Size)
		case in.Height > 0:
			return fmt.Sprintf("%d×%d px", in.Height, in.Width)
		}
		return "set by its config"
	},
	"lower": strings.ToLower,
}

var parse = sync.OnceValues(func() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	pages, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, p := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", p)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", p, err)
		}
		out[name] = t
	}
	return out, nil
})

// Render writes page name (models, jobs, job, compare, datasets, images,
// login) with data.
func Render(w io.Writer, name string, data any) error {
	ts, err := parse()
	if err != nil {
		return err
	}
	t, ok := ts[name]
	if !ok {
		return fmt.Errorf("no console page %q", name)
	}
	return t.Execute(w, data)
}

// Static serves the console's static files under /static/.
func Static() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	fsrv := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		fsrv.ServeHTTP(w, r)
	})
}

// HumanBytes writes n in B, KiB, MiB or GiB.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGT"[exp])
}
