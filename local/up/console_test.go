package up

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/registry"
)

// chromium finds Debian's Chromium (make deps installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is missing: run make deps (it installs Debian's chromium)")
	return ""
}

// css is a CSS selector.
func css(s string) chromedp.CSS { return chromedp.CSS(s) }

// browser is a headless Chromium with a fresh profile, until the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// failPage fails the test with what, err, and where the browser is.
func failPage(t *testing.T, ctx context.Context, what string, err error) {
	t.Helper()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
	t.Fatalf("%s: %v\nat %s\n%s", what, err, loc, html)
}

// do runs browser steps, bounded in time.
func do(t *testing.T, ctx context.Context, timeout time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		failPage(t, ctx, what, err)
	}
}

// get runs one browser action for its value, bounded in time.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, a)
	if err != nil {
		failPage(t, ctx, what, err)
	}
	return v
}

// js runs a script for its effect.
func js(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[any](expr)(ctx, tg)
		return err
	})
}

// change sets a form control's value as a person would, firing its
// change event.
func change(sel, value string) chromedp.Action[chromedp.Void] {
	return js(fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`, sel, value))
}

// shot saves a full-page screenshot of the current page as name.png.
func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png := get(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

func consoleInBrowser(t *testing.T, p *platform, url, token, apiJob string) {
	ctx := browser(t)
	out := outputDir(t)
	cat := registry.Default()
	total := len(cat.Models())
	timm := len(cat.Filter(registry.Query{Framework: "timm"}))

	// Sign in; the model selector filters with its count.
	do(t, ctx, 30*time.Second, "signing in",
		chromedp.Navigate(url+"/models"),
		chromedp.WaitVisible(css("#token")),
		chromedp.SendKeys(css("#token"), token),
		chromedp.Submit(css("#token")),
		chromedp.WaitVisible(css("#cards")),
	)
	if count := get(t, ctx, "the count", chromedp.Text(css("#model-count [data-count]"))); count != fmt.Sprint(total) {
		t.Errorf("the model count = %q, want %d", count, total)
	}
	do(t, ctx, 10*time.Second, "filtering by framework", change("#f-framework", "timm"))
	count := get(t, ctx, "the count", chromedp.Text(css("#model-count [data-count]")))
	visible := get(t, ctx, "the cards shown", chromedp.Evaluate[int](`document.querySelectorAll('.card:not([hidden])').length`))
	if count != fmt.Sprint(timm) || visible != timm {
		t.Errorf("filtered by timm: count %q, %d cards shown; want %d", count, visible, timm)
	}
	unlabelled := get(t, ctx, "checking labels", chromedp.Evaluate[int](`Array.from(document.querySelectorAll('input:not([type=hidden]), select, button')).filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()).length`))
	if unlabelled != 0 {
		t.Errorf("%d form controls of the models page have no label", unlabelled)
	}
	shot(t, ctx, out, "models")
	// Readable at a narrow width: nothing wider than the screen.
	do(t, ctx, 10*time.Second, "narrowing the window", chromedp.EmulateViewport(360, 800))
	if get(t, ctx, "the page's width", chromedp.Evaluate[bool](`document.documentElement.scrollWidth > document.documentElement.clientWidth + 1`)) {
		t.Error("the models page is wider than a 360 px screen")
	}
	shot(t, ctx, out, "models-narrow")
	do(t, ctx, 10*time.Second, "widening the window", chromedp.EmulateViewport(1280, 900))

	// Start a job from a card.
	do(t, ctx, 30*time.Second, "training from the resnet18 card",
		change("#f-framework", "torchvision"),
		chromedp.Click(css("#model-torchvision-resnet18 button.train")),
		chromedp.WaitVisible(css("#train-dialog")),
		chromedp.SetValue(css("#t-epochs"), "3"),
		chromedp.SetValue(css("#t-size"), "32"),
		chromedp.SetValue(css("#t-batch"), "8"),
		chromedp.SetValue(css("#t-executor"), "process"),
		chromedp.Click(css("#train-submit")),
		chromedp.WaitVisible(css("#timeline")),
	)
	loc := get(t, ctx, "the job page's address", chromedp.Location())
	consoleJob := loc[strings.LastIndex(loc, "/")+1:]
	if !strings.HasPrefix(consoleJob, "job-") || consoleJob == apiJob {
		t.Fatalf("the console's job page is %s, want a new job's", loc)
	}
	// Its timeline reaches run.finished, live, and its curve gets points.
	do(t, ctx, 4*time.Minute, "waiting for run.finished on the job page",
		chromedp.WaitVisible(css(`#timeline li[data-type="run.finished"]`)),
		chromedp.WaitVisible(css(`#curves circle.dot`)),
		chromedp.WaitVisible(css(`#job-state.succeeded`)),
		chromedp.WaitVisible(css(`#job[data-refreshed="true"]`)),
	)
	if arts := get(t, ctx, "the artifacts", chromedp.Text(css("#artifacts"))); !strings.Contains(arts, "metrics.json") {
		t.Errorf("the job page's artifacts = %q, want metrics.json among them", arts)
	}
	points := get(t, ctx, "the curve's points", chromedp.Evaluate[int](`document.querySelectorAll('#curves circle.dot').length`))
	image := get(t, ctx, "the image", chromedp.Text(css("#lineage-image")))
	if points == 0 || !strings.Contains(image, "@sha256:") {
		t.Errorf("the job page: %d curve points, image %q; want points and the image by digest", points, image)
	}
	job := p.job(t, consoleJob)
	if job.State != ledger.StateSucceeded || job.Hyperparameters.Epochs != 3 || !strings.HasPrefix(job.RequestedBy, "gateway:") {
		t.Errorf("the console's job = %s, %+v, requested by %q", job.State, job.Hyperparameters, job.RequestedBy)
	}
	shot(t, ctx, out, "job")

	// Compare the two runs.
	do(t, ctx, 30*time.Second, "comparing the two runs",
		chromedp.Navigate(url+"/jobs"),
		chromedp.WaitVisible(css("#compare-form")),
		chromedp.Click(css(`input[value="`+apiJob+`"]`)),
		chromedp.Click(css(`input[value="`+consoleJob+`"]`)),
		chromedp.Click(css("#compare-button")),
		chromedp.WaitVisible(css(`#compare[data-loaded="true"]`)),
	)
	columns := get(t, ctx, "the runs side by side", chromedp.Evaluate[int](`document.querySelectorAll('#side thead th').length - 1`))
	series := get(t, ctx, "the curves", chromedp.Evaluate[int](`new Set(Array.from(document.querySelectorAll('#curves circle.dot')).map(c => c.dataset.series)).size`))
	if columns != 2 || series != 2 {
		t.Errorf("the comparison has %d runs side by side and curves of %d; want 2 and 2", columns, series)
	}
	shot(t, ctx, out, "compare")
	// Upload files from the browser through the presigned URLs. DevTools
	// cannot drive a folder picker: the input takes files instead, which go
	// up flat (the intake then rejects them as an ImageFolder, once they
	// landed in the store).
	files := t.TempDir()
	var paths []string
	for i := range 3 {
		f := filepath.Join(files, fmt.Sprintf("%d.png", i))
		if err := os.WriteFile(f, []byte(strings.Repeat("x", 1000*(i+1))), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, f)
	}
	do(t, ctx, 60*time.Second, "uploading from the datasets page",
		chromedp.Navigate(url+"/datasets"),
		chromedp.WaitVisible(css("#upload-form")),
		chromedp.SendKeys(css("#u-name"), "flat"),
		js(`document.querySelector('#u-folder').removeAttribute('webkitdirectory')`),
		chromedp.SetUploadFiles(css("#u-folder"), paths),
		chromedp.Click(css("#upload-submit")),
		chromedp.WaitVisible(css(`#upload-form[data-done="true"]`)),
	)
	if status := get(t, ctx, "the upload's status", chromedp.Text(css("#upload-status"))); !strings.Contains(status, "Uploaded 3 files to datasets/flat/") {
		t.Errorf("the upload's status = %q", status)
	}
	if progress := get(t, ctx, "the upload's progress", chromedp.Evaluate[float64](`document.querySelector('#upload-progress').value`)); progress != 1 {
		t.Errorf("the upload's progress bar = %v, want 1", progress)
	}
	p.dataset(t, "flat/", func(s ledger.DatasetStatus) bool { return s.State != "" })
	for _, page := range []string{"jobs", "datasets", "images"} {
		do(t, ctx, 30*time.Second, "the "+page+" page", chromedp.Navigate(url+"/"+page), chromedp.WaitVisible(css("main h1")))
		shot(t, ctx, out, page)
	}
	if images := get(t, ctx, "the images", chromedp.Evaluate[int](`document.querySelectorAll('section.image').length`)); images != 1 {
		t.Errorf("the images page shows %d images, want the torchvision-cpu image", images)
	}
}
