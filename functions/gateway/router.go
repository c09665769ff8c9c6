package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/gateway/api"
)

// route is one operation: a method and a path pattern (net/http's, with
// {wildcards}), the scope a token needs ("" for none), and whether it is a
// console page (which sends people to the login page instead of a 401).
type route struct {
	method, pattern string
	scope           string
	page            bool
	name            string
	h               http.HandlerFunc
}

// Routes lists the gateway's operations as "METHOD pattern", for tests
// that keep the OpenAPI document true.
func (f *Function) Routes() []string {
	var out []string
	for _, r := range f.routes {
		out = append(out, r.method+" "+r.pattern)
	}
	return out
}

// router dispatches on the path, then the method, so that a method a path
// does not take is a JSON 405 naming the ones it does.
type router struct {
	f   *Function
	mux *http.ServeMux
}

func newRouter(f *Function, routes []route) *router {
	rt := &router{f: f, mux: http.NewServeMux()}
	byPath := map[string][]route{}
	var order []string
	for _, r := range routes {
		if _, ok := byPath[r.pattern]; !ok {
			order = append(order, r.pattern)
		}
		byPath[r.pattern] = append(byPath[r.pattern], r)
	}
	for _, p := range order {
		rt.mux.Handle(p, rt.dispatch(byPath[p]))
	}
	if _, ok := byPath["/api/"]; !ok {
		rt.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, api.CodeNotFound, "no such API route: "+r.URL.Path)
		})
	}
	return rt
}

// ServeHTTP serves the gateway's routes.
func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) { rt.mux.ServeHTTP(w, r) }

type ctxKey int

const tokenKey ctxKey = 0

// caller is the token of the request (zero for a public route).
func caller(ctx context.Context) Token {
	t, _ := ctx.Value(tokenKey).(Token)
	return t
}

func (rt *router) dispatch(rs []route) http.Handler {
	var allow []string
	for _, r := range rs {
		allow = append(allow, r.method)
		if r.method == http.MethodGet {
			allow = append(allow, http.MethodHead)
		}
	}
	slices.Sort(allow)
	allowed := strings.Join(allow, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		i := slices.IndexFunc(rs, func(x route) bool { return x.method == method })
		if i < 0 {
			w.Header().Set("Allow", allowed)
			writeError(w, http.StatusMethodNotAllowed, api.CodeMethod, fmt.Sprintf("%s takes %s", r.URL.Path, allowed))
			return
		}
		rt.serve(w, r, rs[i])
	})
}

// serve checks the caller, then runs the route, with its metrics and log.
func (rt *router) serve(w http.ResponseWriter, r *http.Request, rte route) {
	f := rt.f
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		code := sw.status
		if code == 0 {
			code = http.StatusOK
		}
		f.m.requests.WithLabelValues(rte.name, strconv.Itoa(code)).Inc()
		f.m.latency.WithLabelValues(rte.name).Observe(time.Since(start).Seconds())
		if f.log != nil {
			ev := f.log.Debug()
			if code >= 500 {
				ev = f.log.Warn()
			}
			ev.Str("method", r.Method).Str("path", r.URL.Path).Int("status", code).Str("token", caller(r.Context()).Name).
				Dur("took", time.Since(start)).Msg("request")
		}
	}()
	if !f.started.Load() {
		writeError(sw, http.StatusServiceUnavailable, api.CodeUnavailable, ErrNotStarted.Error())
		return
	}
	if rte.scope != "" {
		tok, viaCookie, ok := f.authenticate(r)
		switch {
		case !ok && rte.page:
			http.Redirect(sw, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		case !ok:
			sw.Header().Set("WWW-Authenticate", `Bearer realm="vp"`)
			writeError(sw, http.StatusUnauthorized, api.CodeUnauthorized, "a bearer token is required (Authorization: Bearer <token>); it is missing or wrong")
			return
		case !allows(tok.Scope, rte.scope):
			writeError(sw, http.StatusForbidden, api.CodeForbidden, fmt.Sprintf("token %s has the %s scope; %s %s needs %s", tok.Name, tok.Scope, r.Method, r.URL.Path, rte.scope))
			return
		case viaCookie && rte.method != http.MethodGet && r.Header.Get(consoleHeader) == "":
			// A write by the console's cookie must come from its own
			// scripts: a custom header no other site can send without
			// a CORS preflight the gateway never grants.
			writeError(sw, http.StatusForbidden, api.CodeForbidden, "a write with the console's cookie needs the "+consoleHeader+" header")
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), tokenKey, tok))
	}
	rte.h(sw, r)
}

// consoleHeader marks the console's own requests (see serve).
const consoleHeader = "X-VP-Console"

// cookieName holds the console's token.
const cookieName = "vp_token"

// authenticate finds the caller's token: Authorization: Bearer, else the
// console's cookie.
func (f *Function) authenticate(r *http.Request) (Token, bool, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return Token{}, false, false
		}
		t, ok := f.auth.lookup(strings.TrimSpace(tok))
		return t, false, ok
	}
	if c, err := r.Cookie(cookieName); err == nil {
		t, ok := f.auth.lookup(c.Value)
		return t, true, ok
	}
	return Token{}, false, false
}

// statusWriter records the status; Unwrap lets http.ResponseController
// reach the connection (deadlines, flushes) of event streams.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if fl, ok := w.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeError answers with an api.ErrorBody.
func writeError(w http.ResponseWriter, status int, code, msg string, fields ...events.FieldError) {
	b := api.ErrorBody{Code: code, Message: msg, Fields: fields}
	if len(fields) > 0 {
		b.Field = fields[0].Field
	}
	writeJSON(w, status, b)
}

// fieldError answers with one field at fault.
func fieldError(w http.ResponseWriter, status int, code, field, format string, args ...any) {
	reason := fmt.Sprintf(format, args...)
	writeError(w, status, code, field+": "+reason, events.FieldError{Field: field, Reason: reason})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// readJSON decodes the body into v: at most the body limit, JSON only, no
// unknown fields, one value. It answers the error itself and reports
// whether v was read.
func (f *Function) readJSON(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSONType(ct) {
		writeError(w, http.StatusUnsupportedMediaType, api.CodeUnsupported, "the body must be application/json, not "+ct)
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, f.limits.MaxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, api.CodeTooLarge, fmt.Sprintf("a body is at most %d bytes", f.limits.MaxBody))
			return false
		}
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "reading the body: "+err.Error())
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		if optional {
			return true
		}
		fieldError(w, http.StatusBadRequest, api.CodeBadRequest, "body", "a JSON object is required")
		return false
	}
	body = integralNumbers(body)
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		field, reason := jsonProblem(err)
		fieldError(w, http.StatusBadRequest, api.CodeBadRequest, field, "%s", reason)
		return false
	}
	if dec.More() {
		fieldError(w, http.StatusBadRequest, api.CodeBadRequest, "body", "one JSON object, and nothing after it")
		return false
	}
	return true
}

func isJSONType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(strings.ToLower(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// jsonProblem names the field a decoding error is about ("body" when it
// is about the whole) and why.
func jsonProblem(err error) (string, string) {
	if ute, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		field := ute.Field
		if field == "" {
			field = "body"
		}
		return field, fmt.Sprintf("cannot use JSON %s as %s", ute.Value, jsonKind(ute.Type.Kind().String()))
	}
	msg := err.Error()
	if i := strings.Index(msg, `unknown field "`); i >= 0 {
		name := strings.TrimSuffix(msg[i+len(`unknown field "`):], `"`)
		return name, "unknown field"
	}
	return "body", "not valid JSON: " + msg
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "int32", "uint", "uint64", "float64", "float32":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return k
}

// integralNumbers writes the numbers of a JSON body that are integers
// written as decimals or exponents (2.0, 1e3: integers to JSON Schema) as
// integers, which encoding/json takes into integer fields. A body that is
// not JSON is left as it is, for the decoder to name its problem.
func integralNumbers(body []byte) []byte {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return body
	}
	changed := false
	var walk func(any) any
	walk = func(x any) any {
		switch t := x.(type) {
		case map[string]any:
			for k, e := range t {
				t[k] = walk(e)
			}
		case []any:
			for i, e := range t {
				t[i] = walk(e)
			}
		case json.Number:
			s := string(t)
			if !strings.ContainsAny(s, ".eE") {
				return t
			}
			f, ok := new(big.Float).SetString(s)
			if !ok || !f.IsInt() {
				return t
			}
			if i, acc := f.Int64(); acc == big.Exact {
				changed = true
				return json.Number(strconv.FormatInt(i, 10))
			}
		}
		return x
	}
	v = walk(v)
	if !changed {
		return body
	}
	b, err := json.Marshal(v)
	if err != nil {
		return body
	}
	return b
}
