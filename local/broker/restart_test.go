package broker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vision-platform/vp/internal/testsupport"
)

// helperEnv marks the test binary run again as a helper process
// (startHelper): TestMain then serves instead of running the tests.
const helperEnv = "VP_BROKER_HELPER_PROCESS"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		helperProcess() // never returns
	}
	os.Exit(m.Run())
}

// helperProcess is a broker in a process of its own, for
// TestInt_RestartAfterSIGKILL and the benchmarks (VP_HELPER_DATA,
// VP_HELPER_TRIGGERS), or the benchmarks' relay (VP_HELPER_RELAY). It
// prints "LISTENING addr" once it listens.
func helperProcess() {
	dir, triggers := os.Getenv("VP_HELPER_DATA"), os.Getenv("VP_HELPER_TRIGGERS")
	if target := os.Getenv("VP_HELPER_RELAY"); target != "" {
		serveRelay(target) // the benchmarks' two-hop floor; never returns
	}
	if dir == "" {
		fmt.Println("ERROR", "VP_HELPER_DATA or VP_HELPER_RELAY is required")
		os.Exit(2)
	}
	trs, err := LoadTriggers(triggers)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	b, err := New(context.Background(), WithDataDir(dir), WithTriggers(trs...), WithRedeliveryAfter(time.Second), WithParallelism(64))
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	if prof := os.Getenv("VP_HELPER_CPUPROFILE"); prof != "" {
		// Profiling the broker process alone (make bench-broker with it set).
		f, err := os.Create(prof)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		go func() {
			time.Sleep(4 * time.Second)
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "closing the profile:", err)
			}
		}()
	}
	fmt.Println("LISTENING", ln.Addr().String())
	if err := b.Serve(context.Background(), ln); err != nil {
		fmt.Fprintln(os.Stderr, "serving:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// startHelper runs helperProcess in a child process (the test binary
// again) with the environment env and returns it with its base URL once it
// listens.
func startHelper(t testing.TB, env ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), helperEnv+"=1"), env...)
	if p := os.Getenv("VP_HELPER_GOMAXPROCS"); p != "" {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+p)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The process may have been killed already, and Wait reports the
		// kill: neither error says anything about the test.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := bufio.NewScanner(out)
	deadline := time.AfterFunc(30*time.Second, func() {
		if err := cmd.Process.Kill(); err != nil {
			t.Errorf("killing the broker process that did not listen: %v", err)
		}
	})
	defer deadline.Stop()
	for lines.Scan() {
		if addr, ok := strings.CutPrefix(lines.Text(), "LISTENING "); ok {
			go func() {
				for lines.Scan() {
				}
			}()
			return cmd, "http://" + addr
		}
		if strings.HasPrefix(lines.Text(), "ERROR") {
			t.Fatalf("broker process: %s", lines.Text())
		}
	}
	t.Fatal("broker process exited before listening")
	return nil, ""
}

func TestInt_RestartAfterSIGKILL(t *testing.T) {
	testsupport.Integration(t)
	var up atomic.Bool
	var accepted sync.Map // ids the subscriber answered 200 to
	s := newSink(t, func(_ int64, e event.Event, w http.ResponseWriter) {
		if up.Load() {
			accepted.Store(e.ID(), true)
			w.WriteHeader(200)
		} else {
			w.WriteHeader(503)
		}
	})
	dir := t.TempDir()
	triggers := filepath.Join(dir, "triggers.yaml")
	if err := os.WriteFile(triggers, []byte(trigger("durable", s.URL, "  delivery: {retry: 1000, backoffPolicy: linear, backoffDelay: PT0.02S}\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")

	env := []string{"VP_HELPER_DATA=" + data, "VP_HELPER_TRIGGERS=" + triggers}
	cmd, base := startHelper(t, env...)
	const n = 300
	for i := 0; i < n; i++ {
		mustAccept(t, base+"/default/default", mkEvent(fmt.Sprint("k", i), "t"))
	}
	// Let the subscriber refuse some deliveries, then kill the broker hard.
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); !errors.As(err, new(*exec.ExitError)) {
		t.Fatalf("Wait() after SIGKILL = %v, want the kill", err)
	}
	t.Logf("%d refused attempts before SIGKILL", s.calls.Load())

	up.Store(true)
	startHelper(t, env...)
	testsupport.Eventually(t, 30*time.Second, "every accepted event delivered after restart", func() bool {
		delivered := 0
		for i := 0; i < n; i++ {
			if _, ok := accepted.Load(fmt.Sprint("k", i)); ok {
				delivered++
			}
		}
		return delivered == n
	})
}
