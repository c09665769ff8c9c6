package dockerapitest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vision-platform/vp/internal/dockerapi"
)

// Container is a container of the stand-in engine.
type Container struct {
	ID, Name string
	Config   dockerapi.ContainerConfig
	// State is created, running or exited.
	State    string
	ExitCode int
	// FinishedAt is when it ended (the zero time while it has not).
	FinishedAt time.Time
	// Signals are those it was sent, in order.
	Signals []string
	// Logs is what its process wrote (already multiplexed: see Frame).
	Logs []byte
}

// Request is a request the engine got: its path without the version.
type Request struct {
	Method, Path string
	Query        url.Values
	Body         []byte
}

// Engine is the stand-in engine. Its exported fields set how it answers;
// set them before the calls they change.
type Engine struct {
	// Host is its address, unix:///...
	Host string
	// APIVersion is what its ping answers (default 1.41).
	APIVersion string
	// PullError, when set, is reported in every pull's progress stream
	// after a first status line, as an engine does for a failed pull.
	PullError string
	// IgnoreTERM makes its containers' processes survive SIGTERM (only
	// SIGKILL ends them).
	IgnoreTERM bool
	// StartError, when set, fails every start with status 500 and this
	// message, as an engine does for a device driver it lacks.
	StartError string
	// Before, when set, is called with each request before it is served:
	// a test changes the engine there between two calls of a client.
	Before func(Request)

	t          testing.TB
	mu         sync.Mutex
	changed    *sync.Cond
	images     map[string]bool
	containers map[string]*Container // by name
	requests   []Request
	next       int
}

// New starts an engine on a unix socket in t's temporary folder until the
// test ends.
func New(t testing.TB) *Engine {
	t.Helper()
	dir, err := os.MkdirTemp("", "engine")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "docker.sock") // short: a socket path has a length limit
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{t: t, Host: "unix://" + sock, APIVersion: "1.41", images: map[string]bool{}, containers: map[string]*Container{}}
	e.changed = sync.NewCond(&e.mu)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		e.mu.Lock()
		for _, c := range e.containers {
			c.State = "exited" // ends the waits, so Close returns
		}
		e.changed.Broadcast()
		e.mu.Unlock()
		srv.Close()
	})
	return e
}

// AddImage makes the engine have the image ref.
func (e *Engine) AddImage(ref string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.images[withTag(ref)] = true
}

// HasImage reports whether the engine has the image ref.
func (e *Engine) HasImage(ref string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.images[withTag(ref)]
}

// Requests are the requests the engine got, in order.
func (e *Engine) Requests() []Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Request(nil), e.requests...)
}

// Calls are the requests as "METHOD path", in order, the pings left out:
// for a test's diff.
func (e *Engine) Calls() []string {
	var calls []string
	for _, r := range e.Requests() {
		if r.Path != "/_ping" {
			calls = append(calls, r.Method+" "+r.Path)
		}
	}
	return calls
}

// Reset forgets the requests so far.
func (e *Engine) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests = nil
}

// Container is the container named name.
func (e *Engine) Container(name string) (Container, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[name]
	if !ok {
		return Container{}, false
	}
	cp := *c
	cp.Signals = append([]string(nil), c.Signals...)
	return cp, true
}

// Add adds a container as another client (or an earlier instance) left
// it: named name, made of cfg, in state (created, running or exited; one
// exited ended now).
func (e *Engine) Add(name, state string, cfg dockerapi.ContainerConfig) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.next++
	c := &Container{ID: fmt.Sprintf("%064x", e.next), Name: name, State: state, Config: cfg}
	if state == "exited" {
		c.FinishedAt = time.Now()
	}
	e.containers[name] = c
}

// Exit ends the process of the container named name with code.
func (e *Engine) Exit(name string, code int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.containers[name]; ok {
		c.State, c.ExitCode, c.FinishedAt = "exited", code, time.Now()
		e.changed.Broadcast()
	}
}

// Remove removes the container named name, as another client would.
func (e *Engine) Remove(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.containers, name)
	e.changed.Broadcast()
}

// Write makes the container named name have written s on stream (1
// stdout, 2 stderr).
func (e *Engine) Write(name string, stream byte, s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.containers[name]; ok {
		c.Logs = append(c.Logs, Frame(stream, s)...)
	}
}

// Frame is s as one frame of the engine's multiplexed stream.
func Frame(stream byte, s string) []byte {
	n := len(s)
	return append([]byte{stream, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, s...)
}

// withTag is ref with :latest where it has neither a tag nor a digest.
func withTag(ref string) string {
	last := ref[strings.LastIndex(ref, "/")+1:]
	if strings.Contains(last, ":") || strings.Contains(ref, "@") {
		return ref
	}
	return ref + ":latest"
}

var versioned = regexp.MustCompile(`^/v[0-9]+\.[0-9]+/`)

func (e *Engine) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	path := r.URL.Path
	if loc := versioned.FindStringIndex(path); loc != nil {
		path = path[loc[1]-1:]
	}
	req := Request{Method: r.Method, Path: path, Query: r.URL.Query(), Body: body}
	e.mu.Lock()
	e.requests = append(e.requests, req)
	before := e.Before
	e.mu.Unlock()
	if before != nil {
		before(req)
	}
	switch {
	case path == "/_ping":
		w.Header().Set("Api-Version", e.APIVersion)
		fmt.Fprint(w, "OK")
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/images/") && strings.HasSuffix(path, "/json"):
		if !e.HasImage(strings.TrimSuffix(strings.TrimPrefix(path, "/images/"), "/json")) {
			e.answer(w, http.StatusNotFound, "No such image")
			return
		}
		e.answerJSON(w, http.StatusOK, map[string]string{"Id": "sha256:0"})
	case r.Method == http.MethodPost && path == "/images/create":
		e.pull(w, r.URL.Query())
	case r.Method == http.MethodPost && path == "/containers/create":
		e.create(w, r.URL.Query().Get("name"), body)
	case r.Method == http.MethodGet && path == "/containers/json":
		e.list(w, r.URL.Query())
	case strings.HasPrefix(path, "/containers/"):
		id, verb, _ := strings.Cut(strings.TrimPrefix(path, "/containers/"), "/")
		e.container(w, r, id, verb)
	default:
		e.answer(w, http.StatusNotFound, "page not found")
	}
}

func (e *Engine) answer(w http.ResponseWriter, status int, msg string) {
	e.answerJSON(w, status, map[string]string{"message": msg})
}

func (e *Engine) answerJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	e.wrote(json.NewEncoder(w).Encode(v))
}

// wrote logs a failure to write an answer (the client went away).
func (e *Engine) wrote(err error) {
	if err != nil {
		e.t.Logf("stand-in engine: writing an answer: %v", err)
	}
}

func (e *Engine) pull(w http.ResponseWriter, q url.Values) {
	repo, tag := q.Get("fromImage"), q.Get("tag")
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	e.wrote(enc.Encode(map[string]string{"status": "Pulling from " + repo, "id": tag}))
	if e.PullError != "" {
		e.wrote(enc.Encode(map[string]any{"errorDetail": map[string]string{"message": e.PullError}, "error": e.PullError}))
		return
	}
	ref := repo + ":" + tag
	if strings.Contains(tag, ":") {
		ref = repo + "@" + tag
	}
	e.AddImage(ref)
	e.wrote(enc.Encode(map[string]string{"status": "Status: Downloaded newer image for " + ref}))
}

func (e *Engine) create(w http.ResponseWriter, name string, body []byte) {
	var cfg dockerapi.ContainerConfig
	if err := json.Unmarshal(body, &cfg); err != nil {
		e.answer(w, http.StatusBadRequest, err.Error())
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.images[withTag(cfg.Image)] {
		e.answer(w, http.StatusNotFound, "No such image: "+cfg.Image)
		return
	}
	if _, ok := e.containers[name]; ok {
		e.answer(w, http.StatusConflict, fmt.Sprintf("Conflict. The container name %q is already in use", "/"+name))
		return
	}
	e.next++
	if name == "" {
		name = fmt.Sprintf("c%d", e.next)
	}
	c := &Container{ID: fmt.Sprintf("%064x", e.next), Name: name, Config: cfg, State: "created"}
	e.containers[name] = c
	e.answerJSON(w, http.StatusCreated, map[string]any{"Id": c.ID, "Warnings": []string{}})
}

// lookup finds a container by name or id; the caller holds e.mu.
func (e *Engine) lookup(id string) *Container {
	if c, ok := e.containers[id]; ok {
		return c
	}
	for _, c := range e.containers {
		if c.ID == id {
			return c
		}
	}
	return nil
}

func (e *Engine) list(w http.ResponseWriter, q url.Values) {
	var f map[string][]string
	if s := q.Get("filters"); s != "" {
		if err := json.Unmarshal([]byte(s), &f); err != nil {
			e.answer(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	all := q.Get("all") == "1" || q.Get("all") == "true"
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []dockerapi.Container{}
	for _, c := range e.containers {
		if !all && c.State != "running" && len(f["status"]) == 0 {
			continue
		}
		if matches(c, f) {
			out = append(out, dockerapi.Container{ID: c.ID, Names: []string{"/" + c.Name}, Image: c.Config.Image, Labels: c.Config.Labels, State: c.State})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	e.answerJSON(w, http.StatusOK, out)
}

// matches reports whether c passes the filters (label, status, name).
func matches(c *Container, f map[string][]string) bool {
	for _, l := range f["label"] {
		k, v, withValue := strings.Cut(l, "=")
		got, ok := c.Config.Labels[k]
		if !ok || withValue && got != v {
			return false
		}
	}
	if s := f["status"]; len(s) > 0 && !contains(s, c.State) {
		return false
	}
	if n := f["name"]; len(n) > 0 && !contains(n, c.Name) {
		return false
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// signals are the exit codes of a process ended by a signal (128+n).
var signals = map[string]int{"SIGTERM": 143, "TERM": 143, "15": 143, "SIGKILL": 137, "KILL": 137, "9": 137, "": 137}

func (e *Engine) container(w http.ResponseWriter, r *http.Request, id, verb string) {
	e.mu.Lock()
	c := e.lookup(id)
	if c == nil {
		e.mu.Unlock()
		e.answer(w, http.StatusNotFound, "No such container: "+id)
		return
	}
	switch {
	case r.Method == http.MethodPost && verb == "start":
		if c.State == "running" {
			e.mu.Unlock()
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if e.StartError != "" {
			e.mu.Unlock()
			e.answer(w, http.StatusInternalServerError, e.StartError)
			return
		}
		c.State = "running"
		e.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && verb == "kill":
		if c.State != "running" {
			e.mu.Unlock()
			e.answer(w, http.StatusConflict, "Container "+id+" is not running")
			return
		}
		sig := r.URL.Query().Get("signal")
		c.Signals = append(c.Signals, sig)
		if code := signals[sig]; code == 137 || code == 143 && !e.IgnoreTERM {
			c.State, c.ExitCode, c.FinishedAt = "exited", code, time.Now()
			e.changed.Broadcast()
		}
		e.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && verb == "wait":
		ctx := r.Context()
		stop := context.AfterFunc(ctx, func() {
			e.mu.Lock()
			e.changed.Broadcast()
			e.mu.Unlock()
		})
		defer stop()
		for c.State == "running" && e.lookup(id) == c && ctx.Err() == nil {
			e.changed.Wait()
		}
		code := c.ExitCode
		e.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		e.answerJSON(w, http.StatusOK, map[string]any{"StatusCode": code})
	case r.Method == http.MethodDelete && verb == "":
		delete(e.containers, c.Name)
		e.changed.Broadcast()
		e.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && verb == "json":
		var out dockerapi.ContainerJSON
		out.ID, out.Name, out.Image = c.ID, "/"+c.Name, c.Config.Image
		out.State.Status, out.State.Running, out.State.ExitCode, out.State.FinishedAt = c.State, c.State == "running", c.ExitCode, c.FinishedAt
		out.Config.Image, out.Config.Env, out.Config.Labels = c.Config.Image, c.Config.Env, c.Config.Labels
		out.HostConfig = c.Config.HostConfig
		e.mu.Unlock()
		e.answerJSON(w, http.StatusOK, out)
	case r.Method == http.MethodGet && verb == "logs":
		logs := append([]byte(nil), c.Logs...)
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
		_, err := w.Write(logs)
		e.wrote(err)
	default:
		e.mu.Unlock()
		e.answer(w, http.StatusNotFound, "page not found")
	}
}
