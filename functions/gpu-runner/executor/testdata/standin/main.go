// Command standin stands for the run agent in the docker executor's tests:
// a static binary, the entrypoint of a scratch image. It writes a line on
// stdout and one on stderr, then, as VP_STANDIN says: exit:N exits with N;
// ignore-term ignores SIGTERM (only SIGKILL ends it); anything else waits
// for SIGTERM and exits 143, as the agent does.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	var ev struct {
		Data struct {
			RunID string `json:"runId"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(os.Getenv("VP_RUN_EVENT")), &ev); err != nil {
		fmt.Fprintln(os.Stderr, "stand-in: VP_RUN_EVENT:", err)
		os.Exit(2)
	}
	// The handler first: as PID 1 without one, SIGTERM would be ignored.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	fmt.Println("stand-in agent of run " + ev.Data.RunID)
	fmt.Fprintln(os.Stderr, "stand-in on stderr")
	mode := os.Getenv("VP_STANDIN")
	if code, ok := strings.CutPrefix(mode, "exit:"); ok {
		n, err := strconv.Atoi(code)
		if err != nil {
			fmt.Fprintln(os.Stderr, "stand-in: VP_STANDIN:", err)
			os.Exit(2)
		}
		os.Exit(n)
	}
	for range sig {
		if mode == "ignore-term" {
			fmt.Println("SIGTERM ignored")
			continue
		}
		fmt.Println("terminated")
		os.Exit(143)
	}
}
