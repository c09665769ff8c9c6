package assemble

import (
	"fmt"
	"sort"

	"github.com/vision-platform/vp/images/artifact"
)

// Built is an image recorded in the cache's layout, by name.
type Built struct {
	Name     string
	Artifact artifact.Artifact
}

// Images lists the images built into the cache, by name.
func (c *Cache) Images() ([]Built, error) {
	idx, err := c.layout.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("reading the cache's layout: %w", err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading the cache's layout: %w", err)
	}
	var out []Built
	for _, d := range m.Manifests {
		b := Built{Name: d.Annotations[RefNameAnnotation]}
		if b.Name == "" {
			continue
		}
		if d.MediaType.IsIndex() {
			ii, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", b.Name, err)
			}
			b.Artifact = artifact.FromIndex(ii)
		} else {
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", b.Name, err)
			}
			b.Artifact = artifact.FromImage(img)
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Lookup finds a built image by name.
func (c *Cache) Lookup(name string) (Built, error) {
	all, err := c.Images()
	if err != nil {
		return Built{}, err
	}
	for _, b := range all {
		if b.Name == name {
			return b, nil
		}
	}
	return Built{}, fmt.Errorf("%s has not been built (vp images build %s)", name, name)
}

// LayerUse is a layer of an inspected image and the other images that use
// it.
type LayerUse struct {
	Name     string   `json:"name"`
	Digest   string   `json:"digest"`
	Size     int64    `json:"size"`
	SharedBy []string `json:"sharedBy,omitempty"`
}

// Inspection describes a built image: its layers, their sizes and which
// bytes it shares with the other images built.
type Inspection struct {
	Name        string     `json:"name"`
	Digest      string     `json:"digest"`
	Platform    string     `json:"platform"`
	Layers      []LayerUse `json:"layers"`
	TotalBytes  int64      `json:"totalBytes"`
	SharedBytes int64      `json:"sharedBytes"`
}

// Inspect describes the named image (its first platform).
func (c *Cache) Inspect(name string) (*Inspection, error) {
	all, err := c.Images()
	if err != nil {
		return nil, err
	}
	users := map[string][]string{}
	var target *Built
	for i, b := range all {
		img, err := b.Artifact.First()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", b.Name, err)
		}
		m, err := img.Manifest()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", b.Name, err)
		}
		for _, l := range m.Layers {
			users[l.Digest.String()] = append(users[l.Digest.String()], b.Name)
		}
		if b.Name == name {
			target = &all[i]
		}
	}
	if target == nil {
		return nil, fmt.Errorf("%s has not been built (vp images build %s)", name, name)
	}
	img, err := target.Artifact.First()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	d, err := target.Artifact.Digest()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	out := &Inspection{Name: name, Digest: d.String(), Platform: cf.OS + "/" + cf.Architecture}
	for _, l := range m.Layers {
		u := LayerUse{Name: l.Annotations[LayerNameKey], Digest: l.Digest.String(), Size: l.Size}
		for _, other := range users[l.Digest.String()] {
			if other != name {
				u.SharedBy = append(u.SharedBy, other)
			}
		}
		out.TotalBytes += l.Size
		if len(u.SharedBy) > 0 {
			out.SharedBytes += l.Size
		}
		out.Layers = append(out.Layers, u)
	}
	return out, nil
}
