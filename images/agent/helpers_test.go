package agent

import (
	"os"
	osexec "os/exec"
	"strconv"
)

func runCmd(bin string, env []string, args ...string) (string, error) {
	cmd := osexec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	return string(out), err
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
