package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/functions/gateway/api"
	"github.com/vision-platform/vp/internal/ledger"
)

// The framework images are read from the image builder's own record: the
// image.built event of the latest job of each framework image, which lists
// the image's layers (digest and size). An image reference by digest never
// changes, so its layers are read once.
type imageCache struct {
	mu     sync.Mutex
	layers map[string]builtImage // by image reference
}

type builtImage struct {
	events.ImageBuiltData
	at time.Time
}

func newImageCache() *imageCache { return &imageCache{layers: map[string]builtImage{}} }

// built is the image.built of ref, read from job's events.
func (f *Function) built(ctx context.Context, ref, job string) (builtImage, bool, error) {
	f.images.mu.Lock()
	b, ok := f.images.layers[ref]
	f.images.mu.Unlock()
	if ok {
		return b, true, nil
	}
	evs, err := f.ledger.Events(ctx, job)
	if err != nil {
		return b, false, err
	}
	for _, e := range evs {
		if events.Type(e.Type()) != events.ImageBuilt {
			continue
		}
		var d events.ImageBuiltData
		if err := json.Unmarshal(e.Data(), &d); err != nil || d.Reference != ref {
			continue
		}
		b = builtImage{ImageBuiltData: d, at: e.Time().UTC()}
		f.images.mu.Lock()
		f.images.layers[ref] = b
		f.images.mu.Unlock()
		return b, true, nil
	}
	return b, false, nil
}

// Images is the latest image of each framework image the ledger's jobs
// were built in, their layers, and the bytes each shares with the others.
func (f *Function) Images(ctx context.Context) (api.Images, error) {
	all, err := f.jobs.all(ctx)
	if err != nil {
		return api.Images{}, err
	}
	// The latest job of each image repository (the framework image spec).
	latest := map[string]ledger.JobStatus{}
	for _, s := range all {
		if s.Image == "" || !strings.Contains(s.Image, "@sha256:") {
			continue
		}
		repo := s.Image[:strings.Index(s.Image, "@")]
		if have, ok := latest[repo]; !ok || s.Updated.After(have.Updated) {
			latest[repo] = s
		}
	}
	out := api.Images{Images: []api.Image{}}
	holders := map[string][]string{} // layer digest -> frameworks
	sizes := map[string]int64{}
	for _, s := range latest {
		d, ok, err := f.built(ctx, s.Image, s.JobID)
		if err != nil {
			return out, err
		}
		if !ok {
			continue
		}
		img := api.Image{Framework: d.Framework, Reference: d.Reference, JobID: s.JobID, Built: d.at, Layers: []api.ImageLayer{}}
		for _, l := range d.Layers {
			img.Layers = append(img.Layers, api.ImageLayer{Digest: l.Digest, Size: l.Size})
			img.Bytes += l.Size
			if !slices.Contains(holders[l.Digest], d.Framework) {
				holders[l.Digest] = append(holders[l.Digest], d.Framework)
			}
			sizes[l.Digest] = l.Size
		}
		out.Images = append(out.Images, img)
	}
	for i := range out.Images {
		img := &out.Images[i]
		for j := range img.Layers {
			l := &img.Layers[j]
			for _, fw := range holders[l.Digest] {
				if fw != img.Framework {
					l.SharedWith = append(l.SharedWith, fw)
				}
			}
			sort.Strings(l.SharedWith)
			if len(l.SharedWith) > 0 {
				img.SharedBytes += l.Size
			}
		}
		out.Bytes += img.Bytes
	}
	for _, n := range sizes {
		out.StoredBytes += n
	}
	sort.Slice(out.Images, func(i, j int) bool { return out.Images[i].Framework < out.Images[j].Framework })
	return out, nil
}

func (f *Function) listImages(w http.ResponseWriter, r *http.Request) {
	imgs, err := f.Images(r.Context())
	if err != nil {
		f.storeFailed(w, "reading the images", err)
		return
	}
	writeJSON(w, http.StatusOK, imgs)
}
