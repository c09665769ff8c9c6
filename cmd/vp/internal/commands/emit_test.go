package commands

import (
	"context"
	"strings"
	"testing"
)

// TestEmitFlagErrors: the library's field errors come back naming the flags.
func TestEmitFlagErrors(t *testing.T) {
	cases := []struct {
		desc string
		args []string
		want string
	}{
		{"bad extension", []string{"emit", "--broker", "http://127.0.0.1:1/default/default", "--type", "com.example.x", "--ext", "Bad=1"}, `--ext "Bad=1"`},
		{"empty type", []string{"emit", "--broker", "http://127.0.0.1:1/default/default", "--type", ""}, "--type: required"},
		{"bad inline data", []string{"emit", "--broker", "http://127.0.0.1:1/default/default", "--type", "com.example.x", "--data", "{oops"}, "--data: line 1, column 2"},
		{"relative broker", []string{"emit", "--broker", "/default/default", "--type", "com.example.x"}, "--broker"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			out, err := run(context.Background(), "", c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("vp %s = %v (output %q), want an error with %q", strings.Join(c.args, " "), err, out, c.want)
			}
		})
	}
}
