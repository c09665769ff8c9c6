package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/vision-platform/vp/internal/strictyaml"
)

// Scopes of a token: read (every GET) and write (read, and every route
// that starts, cancels, uploads or emits something).
const (
	ScopeRead  = "read"
	ScopeWrite = "write"
)

// Token is one bearer token the gateway takes: its name (logged, and the
// requestedBy of what it starts), its scope, and the token itself or its
// hex sha256 (so that a tokens file need not hold the secret).
type Token struct {
	Name   string `yaml:"name"`
	Scope  string `yaml:"scope"`
	Token  string `yaml:"token,omitempty"`
	SHA256 string `yaml:"sha256,omitempty"`
}

// tokensFile is the YAML file of VP_GATEWAY_TOKENS_FILE.
type tokensFile struct {
	Tokens []Token `yaml:"tokens"`
}

var (
	tokenNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]*$`)
	hex64RE     = regexp.MustCompile(`^[a-f0-9]{64}$`)
)

// minTokenLen is the shortest token taken: 16 characters.
const minTokenLen = 16

// check lists what is wrong with t, each problem at its field.
func (t Token) check(add func(field, format string, args ...any)) {
	if !tokenNameRE.MatchString(t.Name) {
		add("name", "%q is not a token name (letters, digits, '.', '_', '@', '-')", t.Name)
	}
	if t.Scope != ScopeRead && t.Scope != ScopeWrite {
		add("scope", "%q is not read or write", t.Scope)
	}
	switch {
	case t.Token != "" && t.SHA256 != "":
		add("token", "give the token or its sha256, not both")
	case t.Token == "" && t.SHA256 == "":
		add("token", "required (or sha256: the token's hex sha256)")
	case t.Token != "" && len(t.Token) < minTokenLen:
		add("token", "shorter than %d characters", minTokenLen)
	case t.Token != "" && strings.ContainsAny(t.Token, " \t\r\n,"):
		add("token", "contains a blank or a comma")
	case t.SHA256 != "" && !hex64RE.MatchString(t.SHA256):
		add("sha256", "is not 64 lower-case hex digits")
	}
}

// ParseTokens reads a tokens file:
//
//	tokens:
//	  - {name: ci, scope: write, token: "..."}
//	  - {name: dashboard, scope: read, sha256: "<hex sha256 of the token>"}
//
// Unknown fields, bad values and a name given twice are errors naming the
// file, the line and the field.
func ParseTokens(file string, data []byte) ([]Token, error) {
	var out []Token
	err := strictyaml.DecodeAll(file, data, func(doc strictyaml.Document, f *tokensFile) error {
		if out != nil {
			return &strictyaml.Error{File: file, Line: doc.Line(), Reason: "a tokens file holds one document"}
		}
		errs := &strictyaml.Errors{File: file, Doc: doc}
		seen := map[string]bool{}
		for i, t := range f.Tokens {
			t.check(func(field, format string, args ...any) {
				errs.Add(fmt.Sprintf("tokens.%d.%s", i, field), format, args...)
			})
			if seen[t.Name] {
				errs.Add(fmt.Sprintf("tokens.%d.name", i), "%q is named twice", t.Name)
			}
			seen[t.Name] = true
		}
		out = f.Tokens
		if out == nil {
			out = []Token{}
		}
		return errs.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ParseTokensEnv reads VP_GATEWAY_TOKENS: name:scope:token entries
// separated by commas ("ci:write:s3cret...,board:read:t0ken...").
func ParseTokensEnv(v string) ([]Token, error) {
	var out []Token
	var probs []string
	for i, entry := range strings.Split(v, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.SplitN(entry, ":", 3)
		if len(parts) != 3 {
			probs = append(probs, fmt.Sprintf("entry %d: not name:scope:token", i+1))
			continue
		}
		t := Token{Name: parts[0], Scope: parts[1], Token: parts[2]}
		t.check(func(field, format string, args ...any) {
			probs = append(probs, fmt.Sprintf("entry %d (%s): %s: %s", i+1, t.Name, field, fmt.Sprintf(format, args...)))
		})
		if slices.ContainsFunc(out, func(o Token) bool { return o.Name == t.Name }) {
			probs = append(probs, fmt.Sprintf("entry %d: %q is named twice", i+1, t.Name))
		}
		out = append(out, t)
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("VP_GATEWAY_TOKENS: %s", strings.Join(probs, "; "))
	}
	return out, nil
}

// LoadTokensFile reads and parses a tokens file.
func LoadTokensFile(path string) ([]Token, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the tokens file: %w", err)
	}
	return ParseTokens(path, b)
}

// authn checks bearer tokens.
type authn struct {
	tokens []Token
	hashes [][sha256.Size]byte
}

func newAuthn(tokens []Token) (*authn, error) {
	a := &authn{}
	seen := map[string]bool{}
	for i, t := range tokens {
		var probs []string
		t.check(func(field, format string, args ...any) {
			probs = append(probs, field+": "+fmt.Sprintf(format, args...))
		})
		if seen[t.Name] {
			probs = append(probs, fmt.Sprintf("%q is named twice", t.Name))
		}
		if len(probs) > 0 {
			return nil, fmt.Errorf("token %d (%s): %s", i, t.Name, strings.Join(probs, "; "))
		}
		seen[t.Name] = true
		var h [sha256.Size]byte
		if t.Token != "" {
			h = sha256.Sum256([]byte(t.Token))
		} else {
			b, _ := hex.DecodeString(t.SHA256) // checked above
			copy(h[:], b)
		}
		t.Token = "" // keep no secret beyond its hash
		a.tokens = append(a.tokens, t)
		a.hashes = append(a.hashes, h)
	}
	if len(a.tokens) == 0 {
		return nil, ErrNoTokens
	}
	return a, nil
}

// lookup finds the token presented. Every configured token is compared,
// in constant time, whatever matches: neither the time taken nor the
// token's length tells anything about the configured ones.
func (a *authn) lookup(presented string) (Token, bool) {
	got := sha256.Sum256([]byte(presented))
	found := -1
	for i := range a.hashes {
		if subtle.ConstantTimeCompare(got[:], a.hashes[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 || presented == "" {
		return Token{}, false
	}
	return a.tokens[found], true
}

// allows says whether a token of scope have may use a route of scope need.
func allows(have, need string) bool {
	return need == ScopeRead || have == ScopeWrite
}
