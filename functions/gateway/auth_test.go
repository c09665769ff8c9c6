package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseTokens(t *testing.T) {
	sum := sha256.Sum256([]byte("a-token-of-the-dashboard"))
	good := "tokens:\n  - {name: ci, scope: write, token: 0123456789abcdef0123}\n  - {name: board, scope: read, sha256: " + hex.EncodeToString(sum[:]) + "}\n"
	got, err := ParseTokens("tokens.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := []Token{{Name: "ci", Scope: "write", Token: "0123456789abcdef0123"}, {Name: "board", Scope: "read", SHA256: hex.EncodeToString(sum[:])}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ParseTokens (-want +got):\n%s", d)
	}
	cases := []struct {
		desc, file string
		want       []string
	}{
		{"unknown field", "tokens:\n  - {name: ci, scope: write, token: 0123456789abcdef0123, role: x}\n", []string{"tokens.yaml:2", "role"}},
		{"bad scope", "tokens:\n  - name: ci\n    scope: admin\n    token: 0123456789abcdef0123\n", []string{"tokens.yaml:3", "tokens.0.scope", "admin"}},
		{"short token", "tokens:\n  - {name: ci, scope: read, token: short}\n", []string{"tokens.0.token", "shorter than 16"}},
		{"both", "tokens:\n  - {name: ci, scope: read, token: 0123456789abcdef0123, sha256: " + hex.EncodeToString(sum[:]) + "}\n", []string{"not both"}},
		{"bad sha256", "tokens:\n  - {name: ci, scope: read, sha256: XYZ}\n", []string{"tokens.0.sha256"}},
		{"named twice", "tokens:\n  - {name: ci, scope: read, token: 0123456789abcdef0123}\n  - {name: ci, scope: write, token: 0123456789abcdef0124}\n", []string{"tokens.1.name", "twice"}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			_, err := ParseTokens("tokens.yaml", []byte(c.file))
			if err == nil {
				t.Fatalf("ParseTokens(%q) = nil error, want one naming %v", c.file, c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseTokens error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestParseTokensEnv(t *testing.T) {
	got, err := ParseTokensEnv("ci:write:0123456789abcdef0123, board:read:a:token:with:colons")
	if err != nil {
		t.Fatal(err)
	}
	want := []Token{{Name: "ci", Scope: "write", Token: "0123456789abcdef0123"}, {Name: "board", Scope: "read", Token: "a:token:with:colons"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ParseTokensEnv (-want +got):\n%s", d)
	}
	for _, bad := range []string{"ci:write", "ci:root:0123456789abcdef0123", "ci:read:short", "a:read:0123456789abcdef0123,a:write:0123456789abcdef0124"} {
		if _, err := ParseTokensEnv(bad); err == nil || !strings.Contains(err.Error(), "VP_GATEWAY_TOKENS") {
			t.Errorf("ParseTokensEnv(%q) = %v, want an error naming VP_GATEWAY_TOKENS", bad, err)
		}
	}
}

func TestAuthnLookup(t *testing.T) {
	sum := sha256.Sum256([]byte("a-token-of-the-dashboard"))
	a, err := newAuthn([]Token{{Name: "ci", Scope: ScopeWrite, Token: "0123456789abcdef0123"}, {Name: "board", Scope: ScopeRead, SHA256: hex.EncodeToString(sum[:])}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		presented string
		want      string
	}{
		{"0123456789abcdef0123", "ci"},
		{"a-token-of-the-dashboard", "board"},
		{"0123456789abcdef012", ""},
		{"", ""},
		{hex.EncodeToString(sum[:]), ""}, // the hash itself is not the token
	}
	for _, c := range cases {
		tok, ok := a.lookup(c.presented)
		if tok.Name != c.want || ok != (c.want != "") {
			t.Errorf("lookup(%q) = %q, %v; want %q", c.presented, tok.Name, ok, c.want)
		}
		if tok.Token != "" {
			t.Errorf("lookup(%q) hands out the token itself", c.presented)
		}
	}
	if _, err := newAuthn(nil); err != ErrNoTokens {
		t.Errorf("newAuthn(nil) = %v, want ErrNoTokens", err)
	}
	for _, c := range []struct{ have, need string }{{ScopeRead, ScopeRead}, {ScopeWrite, ScopeRead}, {ScopeWrite, ScopeWrite}} {
		if !allows(c.have, c.need) {
			t.Errorf("allows(%s, %s) = false", c.have, c.need)
		}
	}
	if allows(ScopeRead, ScopeWrite) {
		t.Error("a read token may write")
	}
}
