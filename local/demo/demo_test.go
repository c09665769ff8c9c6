package demo

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/internal/dataset"
)

// TestDataset: the demo's dataset is a valid ImageFolder dataset, its
// dataset.yaml parses and asks for the training, the same seed writes the
// same bytes and another seed other bytes.
func TestDataset(t *testing.T) {
	write := func(seed uint64) (string, int, int64) {
		dir := t.TempDir()
		files, size, err := Dataset{PerClass: 4, Side: 16, Seed: seed}.Write(dir)
		if err != nil {
			t.Fatal(err)
		}
		return dir, files, size
	}
	dir, files, size := write(1)
	if files != 12 {
		t.Errorf("Write() made %d files, want 12 (4+2 of each class)", files)
	}
	if _, probs, err := dataset.Validate(os.DirFS(dir), "classification", "imagefolder"); err != nil || len(probs) > 0 {
		t.Errorf("Validate(the demo dataset) = %v, %v", probs, err)
	}
	m := Manifest("demo-1", files, size, Training{Model: "torchvision/resnet18", Epochs: 2, BatchSize: 8, LearningRate: 0.01, ImageSize: 16, Executor: "docker"})
	spec, err := dataset.ParseSpec("dataset.yaml", []byte(m))
	if err != nil {
		t.Fatalf("ParseSpec(%q) = %v", m, err)
	}
	if spec.Name != "demo-1" || spec.Files != 12 || spec.Bytes != size || spec.Train == nil || spec.Train.Model != "torchvision/resnet18" ||
		spec.Train.Hyperparameters.Epochs != 2 || spec.Train.Resources.Executor != "docker" {
		t.Errorf("ParseSpec(the manifest) = %+v (train %+v)", spec, spec.Train)
	}
	same, _, _ := write(1)
	other, _, _ := write(2)
	a, b, c := read(t, dir, "train/cat/000.png"), read(t, same, "train/cat/000.png"), read(t, other, "train/cat/000.png")
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Errorf("seed 1 twice gave equal bytes %v, seeds 1 and 2 %v; want true, false", bytes.Equal(a, b), bytes.Equal(a, c))
	}
}

func read(t *testing.T, dir, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(dir + "/" + rel)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPhases: the four phases from the events' times, their shares, and
// unknown or out-of-order times counted as nothing.
func TestPhases(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, tc := range []struct {
		desc  string
		times Times
		want  []time.Duration // upload, queue, image, training
		total time.Duration
	}{
		{"every hop", Times{UploadStart: at(0), UploadEnd: at(500), Uploaded: at(900), Requested: at(1000), Built: at(1100), Started: at(1300), FirstProgress: at(4000), Finished: at(10000)},
			[]time.Duration{500 * time.Millisecond, 700 * time.Millisecond, 100 * time.Millisecond, 8700 * time.Millisecond}, 10 * time.Second},
		{"no image.built", Times{UploadStart: at(0), UploadEnd: at(500), Requested: at(1000), Started: at(1300), Finished: at(2000)},
			[]time.Duration{500 * time.Millisecond, 500 * time.Millisecond, 0, 700 * time.Millisecond}, 2 * time.Second},
		{"a clock behind", Times{UploadStart: at(0), UploadEnd: at(500), Requested: at(400), Built: at(450), Started: at(600), Finished: at(900)},
			[]time.Duration{500 * time.Millisecond, 150 * time.Millisecond, 50 * time.Millisecond, 300 * time.Millisecond}, 900 * time.Millisecond},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var got []time.Duration
			var share float64
			for _, p := range tc.times.Phases() {
				got = append(got, p.Took)
				share += p.Share
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Phases() (-want +got):\n%s", diff)
			}
			if tc.times.Total() != tc.total {
				t.Errorf("Total() = %s, want %s", tc.times.Total(), tc.total)
			}
			if share > 1.0001 && tc.desc != "a clock behind" {
				t.Errorf("the shares add up to %.3f, more than the whole", share)
			}
		})
	}
	var out strings.Builder
	tm := Times{UploadStart: at(0), UploadEnd: at(500), Requested: at(1000), Built: at(1100), Started: at(1300), FirstProgress: at(4000), Finished: at(10000)}
	if err := tm.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"10s", "training", "87%", "first epoch's metrics 2.7s after the launch", "run.finished +10s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("Print() = %q, want it to hold %q", out.String(), want)
		}
	}
}
