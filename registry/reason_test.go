package registry

import (
	"strings"
	"testing"
)

// TestReasonsWhole: a reason or description ending in "(issue #13)"
// written as a plain YAML scalar loses everything from " #" on (YAML
// reads a comment); every parenthesis the catalog opens it closes.
func TestReasonsWhole(t *testing.T) {
	for _, m := range Default().Models() {
		for field, s := range map[string]string{"reason": m.Reason, "description": m.Description} {
			if strings.Count(s, "(") != strings.Count(s, ")") {
				t.Errorf("%s (%s): %s %q is cut short (a ' #' in a plain YAML scalar starts a comment: quote it)", m.Ref(), m.File, field, s)
			}
		}
	}
}
