package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/dockerapi"
	"github.com/vision-platform/vp/internal/dockerapi/dockerapitest"
	"github.com/vision-platform/vp/internal/testsupport"
)

// TestDockerRemovesEndedRuns: the containers of ended runs are removed
// RemoveAfter after their end, those an earlier instance left (found by
// the sweep) and those of runs launched here (watched); a created one and
// a running one are left; the record of ended runs answers for a removed
// run (a relaunch starts nothing, Wait its exit code, Cancel nothing);
// Close removes an own ended run's container at once and stops asking the
// engine anything.
func TestDockerRemovesEndedRuns(t *testing.T) {
	e := dockerapitest.New(t)
	e.AddImage("img")
	const after = 300 * time.Millisecond
	d := &DockerExecutor{Host: e.Host, RemoveAfter: after, SweepEvery: 50 * time.Millisecond, Log: zerolog.New(zerolog.NewTestWriter(t))}
	closeAtEnd(t, d)
	ctx := context.Background()
	cfg := func(id string) dockerapi.ContainerConfig {
		return dockerapi.ContainerConfig{Image: "img", Labels: map[string]string{RunLabel: id}}
	}
	exists := func(id string) bool {
		_, ok := e.Container(ContainerName(id))
		return ok
	}
	created := func() []string {
		var names []string
		for _, r := range e.Requests() {
			if r.Path == "/containers/create" {
				names = append(names, r.Query.Get("name"))
			}
		}
		return names
	}
	// removed waits for id's container to go and returns how long after
	// since it went.
	removed := func(id string, since time.Time) time.Duration {
		t.Helper()
		testsupport.Eventually(t, 10*time.Second, id+"'s container to be removed", func() bool { return !exists(id) })
		return time.Since(since)
	}

	// Left by an earlier instance: one ended (exit 3), one running, one
	// created and never started.
	e.Add(ContainerName("old"), "running", cfg("old"))
	e.Exit(ContainerName("old"), 3)
	oldEnd := time.Now()
	e.Add(ContainerName("live"), "running", cfg("live"))
	e.Add(ContainerName("new"), "created", cfg("new"))
	d.Start()
	if took := removed("old", oldEnd); took < after {
		t.Errorf("old's container removed %s after its end, want RemoveAfter (%s) or more", took, after)
	}
	if !exists("live") || !exists("new") {
		t.Errorf("the running (%v) or the created (%v) container was removed", exists("live"), exists("new"))
	}
	old := runOf(t, "old", 0)
	old.Image = "img"
	if err := d.Launch(ctx, old); err != nil || exists("old") || len(created()) != 0 {
		t.Errorf("Launch(old, ended and removed) = %v, created %v; want nothing started", err, created())
	}
	if code, err := d.Wait(ctx, "old"); code != 3 || err != nil {
		t.Errorf("Wait(old, removed) = %d, %v; want 3, remembered", code, err)
	}
	if err := d.Cancel(ctx, "old"); err != nil {
		t.Errorf("Cancel(old, removed) = %v, want nil: an ended run is left as it ended", err)
	}

	// The running one ends: the sweep watches it; its logs are there
	// right after its end, its container goes RemoveAfter later.
	e.Write(ContainerName("live"), 1, "last line\n")
	time.Sleep(100 * time.Millisecond) // a sweep has found it running
	e.Exit(ContainerName("live"), 0)
	liveEnd := time.Now()
	if logs, err := d.Logs(ctx, "live"); err != nil || logs != "last line\n" {
		t.Errorf("Logs(live) right after its end = %q, %v", logs, err)
	}
	if took := removed("live", liveEnd); took < after {
		t.Errorf("live's container removed %s after its end, want RemoveAfter (%s) or more", took, after)
	}

	// A run launched here.
	r := runOf(t, "r", 0)
	r.Image = "img"
	if err := d.Launch(ctx, r); err != nil {
		t.Fatal(err)
	}
	e.Exit(ContainerName("r"), 0)
	rEnd := time.Now()
	if took := removed("r", rEnd); took < after {
		t.Errorf("r's container removed %s after its end, want RemoveAfter (%s) or more", took, after)
	}
	if err := d.Launch(ctx, r); err != nil || exists("r") || len(created()) != 1 {
		t.Errorf("Launch(r, ended and removed) = %v, created %v; want one container, the first", err, created())
	}
	if code, err := d.Wait(ctx, "r"); code != 0 || err != nil {
		t.Errorf("Wait(r, removed) = %d, %v; want 0", code, err)
	}

	// Close: a run of this executor that has ended loses its container at
	// once; nothing asks the engine afterwards.
	s := runOf(t, "s", 0)
	s.Image = "img"
	if err := d.Launch(ctx, s); err != nil {
		t.Fatal(err)
	}
	e.Exit(ContainerName("s"), 5)
	testsupport.Eventually(t, 5*time.Second, "s's end to be seen", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		_, ok := d.endedLocked("s")
		return ok
	})
	start := time.Now()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if exists("s") || time.Since(start) >= after {
		t.Errorf("s's container after Close (%s): there %v, want removed at once", time.Since(start), exists("s"))
	}
	e.Reset()
	e.Add(ContainerName("late"), "exited", cfg("late"))
	time.Sleep(after + 200*time.Millisecond)
	if calls := e.Calls(); len(calls) != 0 || !exists("late") || !exists("new") {
		t.Errorf("after Close the engine was asked %v, late there %v, new there %v; want nothing asked, both there", calls, exists("late"), exists("new"))
	}
}

// TestDockerRemembersBounded: the record of ended runs keeps the last
// Remember.
func TestDockerRemembersBounded(t *testing.T) {
	d := &DockerExecutor{Remember: 2}
	d.mu.Lock()
	for i, id := range []string{"a", "b", "c", "b"} {
		d.rememberLocked(id, i)
	}
	var got []string
	for _, id := range []string{"a", "b", "c"} {
		if code, ok := d.endedLocked(id); ok {
			got = append(got, fmt.Sprintf("%s:%d", id, code))
		}
	}
	d.mu.Unlock()
	if want := []string{"b:3", "c:2"}; !slices.Equal(got, want) {
		t.Errorf("remembered %v, want %v", got, want)
	}
}

// TestInt_DockerRemovesEndedRuns drives the removal of ended runs'
// containers on the real engine with the stand-in agent: a container an
// earlier instance left ended is removed; a run that exits keeps its
// container (its logs) RemoveAfter, then loses it, and a relaunch starts
// nothing; a run cancelled with SIGTERM still answers 143 to Wait right
// after; one that ignores SIGTERM is killed after the grace with the
// executor's run.finished and its logs, and answers 137 once removed; Close
// removes an ended run's container at once.
func TestInt_DockerRemovesEndedRuns(t *testing.T) {
	testsupport.Integration(t)
	d, api := realEngine(t)
	ctx := context.Background()
	image := standInImage(t, api)
	sink := testsupport.NewSink(t, events.Validate)
	const after = 2 * time.Second
	d.RemoveAfter, d.SweepEvery, d.Grace = after, 500*time.Millisecond, 2*time.Second
	d.Env = []string{"K_SINK=" + sink.URL}
	prefix := fmt.Sprintf("sweep-%d-", time.Now().UnixNano())
	run := func(id, mode string) Run {
		r := runOf(t, prefix+id, 0)
		r.Image, r.Memory, r.Env = image, "64Mi", []string{"VP_STANDIN=" + mode}
		removeContainer(t, api, r.ID)
		return r
	}
	gone := func(r Run) bool {
		_, err := api.Inspect(ctx, ContainerName(r.ID))
		return errors.Is(err, dockerapi.ErrNotFound)
	}
	// endOf waits for r's container to end and returns when it did (the
	// engine's time).
	endOf := func(r Run) time.Time {
		t.Helper()
		var end time.Time
		testsupport.Eventually(t, 20*time.Second, r.ID+" to end", func() bool {
			info, err := api.Inspect(ctx, ContainerName(r.ID))
			end = info.State.FinishedAt
			return err == nil && info.State.Status == "exited"
		})
		return end
	}
	logsOf := func(r Run, want string) {
		t.Helper()
		testsupport.Eventually(t, 10*time.Second, r.ID+"'s log line "+want, func() bool {
			logs, err := d.Logs(ctx, r.ID)
			return err == nil && strings.Contains(logs, want)
		})
	}

	// Left ended by an earlier instance (created and started as it would
	// have): the sweep of Start removes it, RemoveAfter after its end.
	old := run("old", "exit:4")
	ev, err := json.Marshal(old.Event)
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Pull(ctx, image); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Create(ctx, ContainerName(old.ID), dockerapi.ContainerConfig{Image: image,
		Env: append([]string{"VP_RUN_EVENT=" + string(ev)}, old.Env...), Labels: map[string]string{RunLabel: old.ID}}); err != nil {
		t.Fatal(err)
	}
	if err := api.Start(ctx, ContainerName(old.ID)); err != nil {
		t.Fatal(err)
	}
	oldEnd := endOf(old)
	d.Start()

	// x exits by itself.
	x := run("x", "exit:0")
	if err := d.Launch(ctx, x); err != nil {
		t.Fatal(err)
	}
	xEnd := endOf(x)
	if logs, err := d.Logs(ctx, x.ID); err != nil || !strings.Contains(logs, "stand-in agent of run "+x.ID) {
		t.Errorf("Logs(x) right after its end = %q, %v", logs, err)
	}
	testsupport.Eventually(t, after+10*time.Second, "x's container to be removed", func() bool { return gone(x) })
	if took := time.Since(xEnd); took < after {
		t.Errorf("x's container removed %s after its end, want RemoveAfter (%s) or more", took, after)
	}
	if err := d.Launch(ctx, x); err != nil || !gone(x) {
		t.Errorf("Launch(x, ended and removed) = %v, container made %v; want nothing started", err, !gone(x))
	}
	if code, err := d.Wait(ctx, x.ID); code != 0 || err != nil {
		t.Errorf("Wait(x, removed) = %d, %v; want 0", code, err)
	}
	testsupport.Eventually(t, 10*time.Second, "old's container to be removed", func() bool { return gone(old) })
	if took := time.Since(oldEnd); took < after {
		t.Errorf("old's container removed %s after its end, want RemoveAfter (%s) or more", took, after)
	}
	if code, err := d.Wait(ctx, old.ID); code != 4 || err != nil {
		t.Errorf("Wait(old, removed by the sweep) = %d, %v; want 4", code, err)
	}

	// y is cancelled: SIGTERM, 143, as before.
	y := run("y", "")
	if err := d.Launch(ctx, y); err != nil {
		t.Fatal(err)
	}
	logsOf(y, "stand-in agent")
	if err := d.Cancel(ctx, y.ID); err != nil {
		t.Fatal(err)
	}
	if code, err := d.Wait(ctx, y.ID); code != 143 || err != nil {
		t.Errorf("Wait(cancelled y) = %d, %v; want 143", code, err)
	}

	// z ignores SIGTERM: killed after the grace, its ending sent by the
	// executor, its logs there after the cancel; then left to the watcher.
	z := run("z", "ignore-term")
	if err := d.Launch(ctx, z); err != nil {
		t.Fatal(err)
	}
	logsOf(z, "stand-in agent")
	start := time.Now()
	if err := d.Cancel(ctx, z.ID); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < d.Grace {
		t.Errorf("Cancel(z) returned after %s, before the grace period of %s", took, d.Grace)
	}
	if fin := finishedOf(t, sink, z.ID); fin.Status != events.StatusCancelled || fin.Reason != ReasonKilled {
		t.Errorf("z's run.finished = %+v, want cancelled, %q (sent by the executor)", fin, ReasonKilled)
	}
	if logs, err := d.Logs(ctx, z.ID); err != nil || !strings.Contains(logs, "SIGTERM ignored") {
		t.Errorf("z's logs after the cancel = %q, %v; want SIGTERM ignored", logs, err)
	}
	testsupport.Eventually(t, after+10*time.Second, "z's container to be removed", func() bool { return gone(z) })
	if code, err := d.Wait(ctx, z.ID); code != 137 || err != nil {
		t.Errorf("Wait(z, removed) = %d, %v; want 137", code, err)
	}
	if err := d.Cancel(ctx, z.ID); err != nil {
		t.Errorf("Cancel(z, removed) = %v, want nil", err)
	}
	if err := d.Launch(ctx, z); err != nil || !gone(z) {
		t.Errorf("Launch(z, ended and removed) = %v, container made %v; want nothing started", err, !gone(z))
	}

	// Close removes an ended run's container at once.
	w := run("w", "exit:0")
	if err := d.Launch(ctx, w); err != nil {
		t.Fatal(err)
	}
	endOf(w)
	testsupport.Eventually(t, 5*time.Second, "w's end to be seen", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		_, ok := d.endedLocked(w.ID)
		return ok
	})
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !gone(w) {
		t.Error("w's container is there after Close")
	}
}
