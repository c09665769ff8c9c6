package agent

import (
	"os"
	osexec "os/exec"
	"strconv"
	"testing"
)

func runCmd(bin string, env []string, args ...string) (string, error) {
	cmd := osexec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	return string(out), err
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q is not a number: %v", s, err)
	}
	return n
}
