package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/internal/testsupport"
)

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		desc, line string
		want       Line
		wantErr    string
	}{
		{desc: "empty", line: ""},
		{desc: "framework output", line: "Epoch 1/3 loss=0.5"},
		{desc: "JSON without vp", line: `{"loss": 0.5, "epoch": 1}`},
		{desc: "not JSON", line: `{'vp': 'metric', 'epoch': 1}`},
		{desc: "a JSON array", line: `[{"vp": "metric"}]`},
		{
			desc: "metric",
			line: `{"vp": "metric", "epoch": 3, "step": 120, "time": 41.7, "accuracy": 0.91, "loss": 0.23, "lr": 0.01, "diverged": null}`,
			want: MetricLine{Epoch: 3, Step: 120, Time: 41.7, Metrics: map[string]float64{"accuracy": 0.91, "loss": 0.23, "lr": 0.01}},
		},
		{
			desc: "metric without time or metrics, blanks around",
			line: " {\"vp\":\"metric\",\"epoch\":0,\"step\":0}\r",
			want: MetricLine{Metrics: map[string]float64{}},
		},
		{desc: "resume", line: `{"vp": "resume", "epoch": 2, "step": 80}`, want: ResumeLine{Epoch: 2, Step: 80}},
		{
			desc: "final",
			line: `{"vp": "final", "metrics": {"accuracy": 0.93, "loss": null, "val_loss": 0.21}}`,
			want: FinalLine{Metrics: map[string]float64{"accuracy": 0.93, "val_loss": 0.21}},
		},
		{desc: "final with no metric", line: `{"vp": "final", "metrics": {}}`, want: FinalLine{Metrics: map[string]float64{}}},
		{desc: "unknown kind", line: `{"vp": "checkpoint", "path": "last.pt"}`, want: UnknownLine{Kind: "checkpoint"}},
		{desc: "vp not a string", line: `{"vp": 1}`, wantErr: "reading a protocol line: vp is 1, not a string"},
		{desc: "metric without epoch", line: `{"vp": "metric", "step": 1}`, wantErr: "reading a metric line: epoch is missing"},
		{desc: "metric without step", line: `{"vp": "metric", "epoch": 1}`, wantErr: "reading a metric line: step is missing"},
		{desc: "negative epoch", line: `{"vp": "metric", "epoch": -1, "step": 1}`, wantErr: "reading a metric line: epoch is -1, not an integer from 0 to"},
		{desc: "fractional step", line: `{"vp": "metric", "epoch": 1, "step": 1.5}`, wantErr: "reading a metric line: step is 1.5, not an integer"},
		{desc: "metric not a number", line: `{"vp": "metric", "epoch": 1, "step": 1, "loss": "low", "acc": true}`, wantErr: `reading a metric line: acc is true, not a number`},
		{desc: "time not a number", line: `{"vp": "metric", "epoch": 1, "step": 1, "time": "soon"}`, wantErr: `reading a metric line: time is "soon", not a number`},
		{desc: "resume without step", line: `{"vp": "resume", "epoch": 2}`, wantErr: "reading a resume line: step is missing"},
		{desc: "final without metrics", line: `{"vp": "final"}`, wantErr: "reading a final line: metrics is missing"},
		{desc: "final metrics null", line: `{"vp": "final", "metrics": null}`, wantErr: "reading a final line: metrics is null, not an object"},
		{desc: "final metrics a list", line: `{"vp": "final", "metrics": [0.9]}`, wantErr: "reading a final line: metrics is [0.9], not an object"},
		{desc: "final metric not a number", line: `{"vp": "final", "metrics": {"accuracy": "high"}}`, wantErr: `reading a final line: metrics.accuracy is "high", not a number`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := ParseLine(tc.line)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("ParseLine(%q) = %v, %v; want error %q", tc.line, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLine(%q): %v", tc.line, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseLine(%q) (-want +got):\n%s", tc.line, diff)
			}
		})
	}
}

// TestInt_ProtocolFromSDK reads the lines the Python SDK's writer
// (vp_sdk/protocol.py) prints: both sides of PROTOCOL.md agree.
func TestInt_ProtocolFromSDK(t *testing.T) {
	testsupport.Integration(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(testsupport.Python, []string{"PYTHONPATH=" + filepath.Join(wd, "..", "python")}, "-c", `
from vp_sdk.protocol import MetricLogger
log = MetricLogger()
log.log(3, 120, loss=0.25, accuracy=1, lr=float("nan"), skipped=None)
log.resume(2, 80)
log.final({"accuracy": 0.93, "loss": float("inf")})
`)
	if err != nil {
		t.Fatalf("running the SDK's writer: %v\n%s", err, out)
	}
	var got []Line
	for _, s := range strings.Split(strings.TrimSpace(out), "\n") {
		l, err := ParseLine(s)
		if err != nil || l == nil {
			t.Fatalf("ParseLine(%q) = %v, %v; want a protocol line", s, l, err)
		}
		if m, ok := l.(MetricLine); ok {
			if m.Time < 0 {
				t.Errorf("metric line time %v, want >= 0", m.Time)
			}
			m.Time = 0
			l = m
		}
		got = append(got, l)
	}
	want := []Line{
		MetricLine{Epoch: 3, Step: 120, Metrics: map[string]float64{"loss": 0.25, "accuracy": 1}},
		ResumeLine{Epoch: 2, Step: 80},
		FinalLine{Metrics: map[string]float64{"accuracy": 0.93}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the SDK's lines as the agent reads them (-want +got):\n%s", diff)
	}
}
