package gateway

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/gateway/api"
	"github.com/vision-platform/vp/functions/gateway/console"
	"github.com/vision-platform/vp/internal/dataset"
	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/registry"
)

// consoleCSP keeps the pages to their own scripts and styles; uploads go
// to the store's presigned URLs, at another origin.
const consoleCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' http: https:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

func (f *Function) consoleRoutes() []route {
	page := func(pattern, name string, h http.HandlerFunc) route {
		return route{method: http.MethodGet, pattern: pattern, scope: ScopeRead, page: true, name: "console_" + name, h: h}
	}
	return []route{
		{method: http.MethodGet, pattern: "/{$}", name: "console_home", h: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/models", http.StatusSeeOther)
		}},
		page("/models", "models", f.modelsPage),
		page("/jobs", "jobs", f.jobsPage),
		page("/jobs/{id}", "job", f.jobPage),
		page("/compare", "compare", f.comparePage),
		page("/datasets", "datasets", f.datasetsPage),
		page("/images", "images", f.imagesPage),
		{method: http.MethodGet, pattern: "/login", page: true, name: "console_login", h: f.loginPage},
		{method: http.MethodPost, pattern: "/login", page: true, name: "console_login", h: f.login},
		{method: http.MethodPost, pattern: "/logout", page: true, name: "console_logout", h: f.logout},
		{method: http.MethodGet, pattern: "/static/", name: "console_static", h: console.Static().ServeHTTP},
	}
}

// render writes a console page, with the headers every page has.
func (f *Function) render(w http.ResponseWriter, status int, name string, data any) {
	var b bytes.Buffer
	if err := console.Render(&b, name, data); err != nil {
		f.log.Error().Err(err).Str("page", name).Msg("rendering a console page")
		writeError(w, http.StatusInternalServerError, api.CodeInternal, "rendering the page: "+err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", consoleCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

func (f *Function) pageOf(r *http.Request, title, active string) console.Page {
	t := caller(r.Context())
	return console.Page{Title: title, Active: active, User: t.Name, Write: t.Scope == ScopeWrite}
}

func facets(values []string, count func(string) int, selected string) []console.Facet {
	out := make([]console.Facet, 0, len(values))
	for _, v := range values {
		out = append(out, console.Facet{Value: v, Count: count(v), Selected: v == selected})
	}
	return out
}

func (f *Function) modelsPage(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := registry.Query{Framework: v.Get("framework"), Task: v.Get("task"), Tag: v.Get("tag"), Text: v.Get("q")}
	all := f.catalog.Models()
	shown := map[string]bool{}
	for _, m := range f.catalog.Filter(q) {
		shown[m.Framework+"/"+m.Name] = true
	}
	p := console.ModelsPage{Page: f.pageOf(r, "Models", "models"), Count: len(shown), Total: len(all), Query: q}
	all2 := ModelList(f.catalog, registry.Query{})
	var tags []string
	for t := range all2.Facets.Tags {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	p.Frameworks = facets(f.catalog.Frameworks(), func(s string) int { return all2.Facets.Frameworks[s] }, q.Framework)
	p.Tasks = facets(f.catalog.Tasks(), func(s string) int { return all2.Facets.Tasks[s] }, q.Task)
	p.Tags = facets(tags, func(s string) int { return all2.Facets.Tags[s] }, q.Tag)
	for _, m := range all {
		p.Cards = append(p.Cards, console.Card{Model: m, Hidden: !shown[m.Framework+"/"+m.Name]})
	}
	if p.Write {
		ds, err := f.ledger.Datasets(r.Context())
		if err != nil {
			f.log.Warn().Err(err).Msg("listing datasets for the model selector")
		}
		sort.SliceStable(ds, func(i, j int) bool { return ds[i].Uploaded.After(ds[j].Uploaded) })
		for _, d := range ds {
			if d.State == "uploaded" && d.Digest != "" {
				name := d.Name
				if name == "" {
					name = strings.TrimSuffix(d.Prefix, "/")
				}
				p.Datasets = append(p.Datasets, console.DatasetOption{Name: name, Bucket: d.Bucket, Prefix: d.Prefix, Digest: d.Digest, Task: d.Task, Format: d.Format})
			}
		}
	}
	f.render(w, http.StatusOK, "models", p)
}

func (f *Function) jobsPage(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := JobFilter{State: v.Get("state")}
	if q.State != "" && !slices.Contains(jobStates, q.State) {
		q.State = ""
	}
	var after *ledger.JobStatus
	if t, id, ok := decodeCursor(v.Get("cursor")); ok {
		after = &ledger.JobStatus{Created: t, JobID: id}
	}
	jobs, next, err := f.JobPage(r.Context(), q, after, f.limits.DefaultPage)
	if err != nil {
		f.storeFailed(w, "listing jobs", err)
		return
	}
	f.render(w, http.StatusOK, "jobs", console.JobsPage{Page: f.pageOf(r, "Jobs", "jobs"), Jobs: jobs, Next: next, State: q.State, States: jobStates})
}

func (f *Function) jobPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	var s ledger.JobStatus
	err := errors.New("not a job id")
	if jobIDRE.MatchString(id) {
		s, err = f.jobs.status(ctx, id)
	}
	switch {
	case errors.Is(err, objstore.ErrNotFound) && f.recent.has(id):
		// Asked for a moment ago: the ledger records it soon (the page
		// waits a little for it), and the stream shows it as it comes.
		s = ledger.JobStatus{JobID: id, State: ledger.StateRequested}
		for range 20 {
			time.Sleep(100 * time.Millisecond)
			if got, err := f.ledger.Job(ctx, id); err == nil {
				s = got
				break
			}
		}
	case err != nil && (errors.Is(err, objstore.ErrNotFound) || !jobIDRE.MatchString(id)):
		writeError(w, http.StatusNotFound, api.CodeNotFound, "no job "+id)
		return
	case err != nil:
		f.storeFailed(w, "reading job "+id, err)
		return
	}
	p := console.JobPage{Page: f.pageOf(r, "Job "+id, "job"), Job: s, Terminal: ledger.Terminal(s.State)}
	if s.Dataset != nil {
		if d, err := f.ledger.Dataset(ctx, s.Dataset.Bucket, s.Dataset.Prefix); err == nil {
			p.Dataset = &d
		}
	}
	for _, a := range s.Artifacts {
		if u, err := f.presignGet(ctx, a.URI); err == nil {
			p.Artifacts = append(p.Artifacts, api.Artifact{Artifact: a, URL: u})
		}
	}
	if s.Log != "" {
		if u, err := f.presignGet(ctx, s.Log); err == nil {
			p.Log = &api.Artifact{Artifact: events.Artifact{Name: "log", URI: s.Log}, URL: u}
		}
	}
	f.render(w, http.StatusOK, "job", p)
}

// maxCompared bounds the runs of one comparison.
const maxCompared = 12

func (f *Function) comparePage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := console.ComparePage{Page: f.pageOf(r, "Compare runs", "compare")}
	var ids []string
	for _, v := range r.URL.Query()["job"] {
		for _, id := range strings.Split(v, ",") {
			if jobIDRE.MatchString(id) && !slices.Contains(ids, id) && len(ids) < maxCompared {
				ids = append(ids, id)
			}
		}
	}
	metrics := map[string]bool{}
	for _, id := range ids {
		s, err := f.jobs.status(ctx, id)
		if err != nil {
			continue
		}
		p.Jobs = append(p.Jobs, s)
		for k := range s.Metrics {
			metrics[k] = true
		}
	}
	for k := range metrics {
		p.Metrics = append(p.Metrics, k)
	}
	sort.Strings(p.Metrics)
	if len(p.Jobs) < 2 {
		recent, _, err := f.JobPage(ctx, JobFilter{}, nil, f.limits.DefaultPage)
		if err != nil {
			f.storeFailed(w, "listing jobs", err)
			return
		}
		p.Recent = recent
	}
	f.render(w, http.StatusOK, "compare", p)
}

func (f *Function) datasetsPage(w http.ResponseWriter, r *http.Request) {
	ds, err := f.ledger.Datasets(r.Context())
	if err != nil {
		f.storeFailed(w, "listing datasets", err)
		return
	}
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].Updated.After(ds[j].Updated) })
	p := console.DatasetsPage{Page: f.pageOf(r, "Datasets", "datasets"), Datasets: ds, Tasks: dataset.Tasks(), Formats: []string{events.FormatImageFolder, events.FormatYOLO, events.FormatCOCO}}
	for _, m := range f.catalog.Models() {
		if m.Ready() {
			p.Models = append(p.Models, m)
		}
	}
	f.render(w, http.StatusOK, "datasets", p)
}

func (f *Function) imagesPage(w http.ResponseWriter, r *http.Request) {
	imgs, err := f.Images(r.Context())
	if err != nil {
		f.storeFailed(w, "reading the images", err)
		return
	}
	f.render(w, http.StatusOK, "images", console.ImagesPage{Page: f.pageOf(r, "Images", "images"), Images: imgs})
}

// safeNext keeps a redirect after signing in on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/models"
	}
	if u, err := url.Parse(next); err != nil || u.Host != "" || u.Scheme != "" {
		return "/models"
	}
	return next
}

func (f *Function) loginPage(w http.ResponseWriter, r *http.Request) {
	f.render(w, http.StatusOK, "login", console.LoginPage{Page: console.Page{Title: "Sign in"}, Next: safeNext(r.URL.Query().Get("next"))})
}

// login keeps a valid token in an HttpOnly, SameSite=Strict cookie; the
// page's scripts never see it.
func (f *Function) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "reading the form: "+err.Error())
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	if _, ok := f.auth.lookup(tok); !ok {
		f.render(w, http.StatusUnauthorized, "login", console.LoginPage{Page: console.Page{Title: "Sign in"}, Next: next, Error: "That token is not one this gateway takes."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int((12 * time.Hour).Seconds())})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (f *Function) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
