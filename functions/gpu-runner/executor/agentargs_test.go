package executor

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/testsupport"
)

// TestProcessAgentArgs: AgentArgs come before the agent's flags, so a
// binary with the agent as a subcommand (vp agent) runs as the agent.
func TestProcessAgentArgs(t *testing.T) {
	p, dir := newProcess(t, script(t, "vp", `for a; do last=$a; done
echo "$@" > "$last/args"
`))
	p.AgentArgs = []string{"agent"}
	ctx := context.Background()
	if err := p.Launch(ctx, runOf(t, "r", 0)); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(ctx, "r"); code != 0 || err != nil {
		t.Fatalf("Wait(r) = %d, %v; want 0", code, err)
	}
	runDir := filepath.Join(dir, "r")
	want := "agent --event " + filepath.Join(runDir, "event.json") + " --workdir " + runDir
	if got := contentOf(t, filepath.Join(runDir, "args")); got != want {
		t.Errorf("the agent got args %q, want %q", got, want)
	}
	if len(p.AgentArgs) != 1 {
		t.Errorf("AgentArgs = %q after a launch, want it unchanged", p.AgentArgs)
	}
}

// TestProcessAgentMissingSendsFailed: an agent that cannot be started
// never reports, so the executor sends the run's one ending, failed.
func TestProcessAgentMissingSendsFailed(t *testing.T) {
	p, _ := newProcess(t, filepath.Join(t.TempDir(), "no-such-agent"))
	sink := testsupport.NewSink(t, events.Validate)
	r := runOf(t, "r", 0)
	r.Env = []string{"K_SINK=" + sink.URL}
	ctx := context.Background()
	if err := p.Launch(ctx, r); err != nil {
		t.Fatalf("Launch = %v, want nil (the agent starts asynchronously)", err)
	}
	if _, err := p.Wait(ctx, "r"); err == nil || !strings.Contains(err.Error(), "no-such-agent") {
		t.Errorf("Wait(r) error = %v, want the start error naming the agent", err)
	}
	testsupport.Eventually(t, 10*time.Second, "the run's run.finished at the sink", func() bool {
		return len(sink.OfType(string(events.RunFinished))) > 0
	})
	got := sink.OfType(string(events.RunFinished))
	var fin events.RunFinishedData
	if err := events.DecodeInto(got[0], &fin); err != nil {
		t.Fatal(err)
	}
	if fin.RunID != "r" || fin.Status != events.StatusFailed || !strings.HasPrefix(fin.Reason, ReasonNotStarted+": ") {
		t.Errorf("run.finished = run %s %s (%q); want r failed with a reason beginning %q", fin.RunID, fin.Status, fin.Reason, ReasonNotStarted)
	}
	if st, _ := p.Status("r"); st != "ended" {
		t.Errorf("run is %s, want ended", st)
	}
}

// TestInvalidRun: a run no executor can launch is ErrInvalidRun.
func TestInvalidRun(t *testing.T) {
	p, _ := newProcess(t, standIn(t))
	other := runOf(t, "other", 0)
	other.ID = "mine"
	for _, c := range []struct {
		desc string
		r    Run
	}{
		{"no event", Run{ID: "x"}},
		{"another run's event", other},
	} {
		if err := p.Launch(context.Background(), c.r); !errors.Is(err, ErrInvalidRun) {
			t.Errorf("%s: Launch = %v, want ErrInvalidRun", c.desc, err)
		}
	}
	d := &DockerExecutor{Host: nowhere(t)}
	if err := d.Launch(context.Background(), runOf(t, "r", 0)); !errors.Is(err, ErrInvalidRun) {
		t.Errorf("docker Launch without an image = %v, want ErrInvalidRun", err)
	}
}
