package weights

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/objstore"
)

// DefaultBucket is the bucket the weights live in unless WithBucket says
// otherwise (VP_WEIGHTS_BUCKET where a setting names it).
const DefaultBucket = "weights"

// CurrentName is the object, beside a model's weights, that names its
// current file.
const CurrentName = "current.json"

// maxRecord caps what Current reads of a current.json.
const maxRecord = 64 << 10

// The layout in the bucket, per model of the catalog:
//
//	<framework>/<name>/<sha256><ext>   the imported files, by content
//	<framework>/<name>/current.json    the Record of the current one
//
// A file is stored under its digest, so importing the same file again
// uploads nothing and importing another one keeps the earlier file.

// Record describes a model's current weights: current.json.
type Record struct {
	Framework string `json:"framework"`
	Name      string `json:"name"`
	// SHA256 (hex) and Size are the file's, as imported.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// File is the imported file's own name (its base name).
	File string `json:"file"`
	// Key is the object holding the file, in the bucket.
	Key      string    `json:"key"`
	Imported time.Time `json:"imported"`

	// Object is where the file is (the bucket and Key); not stored.
	Object objstore.URI `json:"-"`
}

// Model is the catalog model the weights are for.
func (r Record) Model() events.ModelRef {
	return events.ModelRef{Framework: r.Framework, Name: r.Name}
}

// Phases of Progress.
const (
	PhaseHashing     = "hashing"
	PhaseUploading   = "uploading"
	PhaseDownloading = "downloading"
)

// Progress says how far a transfer went: Done of Total bytes in Phase.
type Progress struct {
	Phase       string
	Done, Total int64
}

type options struct {
	bucket   string
	progress func(Progress)
	now      func() time.Time
}

// Option tunes Import, Current, Fetch and List.
type Option func(*options) error

// WithBucket keeps the weights in bucket (default DefaultBucket).
func WithBucket(bucket string) Option {
	return func(o *options) error {
		if err := CheckBucket(bucket); err != nil {
			return err
		}
		o.bucket = bucket
		return nil
	}
}

// CheckBucket says whether WithBucket takes bucket.
func CheckBucket(bucket string) error {
	if bucket == "" || strings.ContainsAny(bucket, "/ ") {
		return fmt.Errorf("bucket %q is not a bucket name", bucket)
	}
	return nil
}

// WithProgress calls f as bytes are hashed, uploaded or downloaded (often:
// the caller decides what to show).
func WithProgress(f func(Progress)) Option {
	return func(o *options) error { o.progress = f; return nil }
}

// WithClock stamps imports with now (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) error { o.now = now; return nil }
}

func resolve(opts []Option) (options, error) {
	o := options{bucket: DefaultBucket, progress: func(Progress) {}, now: time.Now}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// plain is a framework or model name that is one path segment.
var plain = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func checkModel(m events.ModelRef) error {
	if !plain.MatchString(m.Framework) || !plain.MatchString(m.Name) {
		return fmt.Errorf("%w: %q (framework/name, each a plain name)", ErrBadModel, m.String())
	}
	return nil
}

// Prefix is the folder of a model's weights in the bucket.
func Prefix(bucket string, m events.ModelRef) objstore.URI {
	return objstore.URI{Bucket: bucket, Key: m.Framework + "/" + m.Name + "/"}
}

// Import uploads file as model's weights and makes it the current one. The
// file is hashed first, then sent to <framework>/<name>/<sha256><ext>
// (nothing is sent when that object is there already with the same size),
// hashed again as it is sent (ErrChanged when the two differ), and then
// current.json names it. Errors name the file.
func Import(ctx context.Context, s objstore.Store, model events.ModelRef, file string, opts ...Option) (Record, error) {
	rec, err := importFile(ctx, s, model, file, opts)
	if err != nil {
		return Record{}, fmt.Errorf("importing %s: %w", file, err)
	}
	return rec, nil
}

func importFile(ctx context.Context, s objstore.Store, model events.ModelRef, file string, opts []Option) (Record, error) {
	o, err := resolve(opts)
	if err != nil {
		return Record{}, err
	}
	if err := checkModel(model); err != nil {
		return Record{}, err
	}
	f, err := os.Open(file)
	if err != nil {
		return Record{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return Record{}, err
	case fi.IsDir():
		return Record{}, errors.New("it is a folder: import one file (a folder of files, such as a saved Hugging Face model, packed as a .tar.gz)")
	case !fi.Mode().IsRegular():
		return Record{}, errors.New("it is not a regular file")
	case fi.Size() == 0:
		return Record{}, errors.New("it is empty")
	}
	h := sha256.New()
	if _, err := io.Copy(h, &counting{r: f, p: Progress{Phase: PhaseHashing, Total: fi.Size()}, f: o.progress}); err != nil {
		return Record{}, fmt.Errorf("hashing: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	rec := Record{
		Framework: model.Framework, Name: model.Name, SHA256: sum, Size: fi.Size(), File: filepath.Base(file),
		Imported: o.now().UTC().Truncate(time.Second),
	}
	rec.Object = Prefix(o.bucket, model).Join(sum + Ext(file))
	rec.Key = rec.Object.Key
	if info, err := s.Stat(ctx, rec.Object); err == nil && info.Size == fi.Size() {
		o.progress(Progress{Phase: PhaseUploading, Done: fi.Size(), Total: fi.Size()})
	} else {
		if err != nil && !errors.Is(err, objstore.ErrNotFound) {
			return Record{}, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return Record{}, err
		}
		info, err := s.Put(ctx, rec.Object, &counting{r: f, p: Progress{Phase: PhaseUploading, Total: fi.Size()}, f: o.progress}, fi.Size())
		if err != nil {
			return Record{}, err
		}
		if info.SHA256 != sum {
			return Record{}, fmt.Errorf("%w: sha256 %s before sending, %s sent", ErrChanged, sum, info.SHA256)
		}
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return Record{}, err
	}
	cur := Prefix(o.bucket, model).Join(CurrentName)
	if _, err := s.Put(ctx, cur, bytes.NewReader(b), int64(len(b)), objstore.WithContentType("application/json")); err != nil {
		return Record{}, fmt.Errorf("naming it current: %w", err)
	}
	return rec, nil
}

// Ext is the extension a stored file keeps from its name: a known
// two-part one (.tar.gz), else the last, in lower case; ".bin" when the
// name has none that is plain.
func Ext(file string) string {
	base := strings.ToLower(filepath.Base(file))
	for _, two := range []string{".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst"} {
		if strings.HasSuffix(base, two) && len(base) > len(two) {
			return two
		}
	}
	ext := filepath.Ext(base)
	if len(ext) < 2 || len(ext) > 16 || ext == base || !plain.MatchString(ext[1:]) {
		return ".bin"
	}
	return ext
}

// Current is model's current weights: ErrNoWeights when none were
// imported (or the bucket is not there).
func Current(ctx context.Context, s objstore.Getter, model events.ModelRef, opts ...Option) (Record, error) {
	o, err := resolve(opts)
	if err != nil {
		return Record{}, err
	}
	if err := checkModel(model); err != nil {
		return Record{}, err
	}
	cur := Prefix(o.bucket, model).Join(CurrentName)
	body, _, err := s.Get(ctx, cur, objstore.WithMaxSize(maxRecord))
	if errors.Is(err, objstore.ErrNotFound) {
		return Record{}, fmt.Errorf("%w for %s in s3://%s/", ErrNoWeights, model, o.bucket)
	}
	if err != nil {
		return Record{}, fmt.Errorf("reading %s: %w", cur, err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		return Record{}, fmt.Errorf("reading %s: %w", cur, err)
	}
	return parseRecord(cur, model, b, o.bucket)
}

var hexSHA = regexp.MustCompile(`^[0-9a-f]{64}$`)

func parseRecord(cur objstore.URI, model events.ModelRef, b []byte, bucket string) (Record, error) {
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return Record{}, fmt.Errorf("reading %s: %w: %w", cur, ErrBadRecord, err)
	}
	prefix := Prefix(bucket, model).Key
	switch {
	case rec.Model() != model:
		return Record{}, fmt.Errorf("reading %s: %w: it is for %s", cur, ErrBadRecord, rec.Model())
	case !hexSHA.MatchString(rec.SHA256):
		return Record{}, fmt.Errorf("reading %s: %w: sha256 %q", cur, ErrBadRecord, rec.SHA256)
	case rec.Size <= 0:
		return Record{}, fmt.Errorf("reading %s: %w: size %d", cur, ErrBadRecord, rec.Size)
	case !strings.HasPrefix(rec.Key, prefix) || strings.Contains(rec.Key[len(prefix):], "/") || path.Clean(rec.Key) != rec.Key:
		return Record{}, fmt.Errorf("reading %s: %w: key %q is not under %s", cur, ErrBadRecord, rec.Key, prefix)
	}
	rec.Object = objstore.URI{Bucket: bucket, Key: rec.Key}
	return rec, nil
}

// Fetch downloads model's current weights into dir and returns the local
// file's path and the record. The file keeps its imported name (the
// digest and extension when that name is not a plain one); it is written
// under a temporary name, checked for size and sha256 (ErrDigestMismatch)
// and only then renamed into place, so a bad download leaves nothing. A
// file already there with the right digest is not downloaded again.
func Fetch(ctx context.Context, s objstore.Getter, model events.ModelRef, dir string, opts ...Option) (string, Record, error) {
	o, err := resolve(opts)
	if err != nil {
		return "", Record{}, err
	}
	rec, err := Current(ctx, s, model, opts...)
	if err != nil {
		return "", Record{}, err
	}
	dst := filepath.Join(dir, LocalName(rec))
	if n, sum, err := hashFile(dst); err == nil && n == rec.Size && sum == rec.SHA256 {
		return dst, rec, nil
	}
	if err := download(ctx, s, rec, dst, o.progress); err != nil {
		return "", Record{}, fmt.Errorf("downloading the weights of %s (%s): %w", model, rec.Object, err)
	}
	return dst, rec, nil
}

// LocalName is the name Fetch gives rec's file: its imported name when that
// is a plain file name, else <sha256><ext>.
func LocalName(rec Record) string {
	if plain.MatchString(rec.File) && rec.File != CurrentName {
		return rec.File
	}
	return rec.SHA256 + Ext(rec.Key)
}

func download(ctx context.Context, s objstore.Getter, rec Record, dst string, progress func(Progress)) (err error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*.part")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	body, _, err := s.Get(ctx, rec.Object, objstore.WithMaxSize(rec.Size))
	if errors.Is(err, objstore.ErrTooLarge) {
		return fmt.Errorf("%w: the object is larger than the %d bytes imported", ErrDigestMismatch, rec.Size)
	}
	if err != nil {
		return err
	}
	defer body.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), &counting{r: body, p: Progress{Phase: PhaseDownloading, Total: rec.Size}, f: progress})
	if errors.Is(err, objstore.ErrTooLarge) {
		return fmt.Errorf("%w: the object is larger than the %d bytes imported", ErrDigestMismatch, rec.Size)
	}
	if err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != rec.Size || sum != rec.SHA256 {
		return fmt.Errorf("%w: got %d bytes with sha256 %s, imported %d bytes with sha256 %s", ErrDigestMismatch, n, sum, rec.Size, rec.SHA256)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func hashFile(p string) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

// List is the current weights of every model in the bucket, by model; a
// bucket that is not there holds none.
func List(ctx context.Context, s objstore.Store, opts ...Option) ([]Record, error) {
	o, err := resolve(opts)
	if err != nil {
		return nil, err
	}
	var recs []Record
	for info, err := range s.List(ctx, objstore.URI{Bucket: o.bucket}) {
		if errors.Is(err, objstore.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		parts := strings.Split(info.URI.Key, "/")
		if len(parts) != 3 || parts[2] != CurrentName {
			continue
		}
		rec, err := Current(ctx, s, events.ModelRef{Framework: parts[0], Name: parts[1]}, opts...)
		if errors.Is(err, ErrBadModel) {
			continue // not a folder Import makes
		}
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Model().String() < recs[j].Model().String() })
	return recs, nil
}

// counting reports the bytes read through it.
type counting struct {
	r io.Reader
	p Progress
	f func(Progress)
}

func (c *counting) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.p.Done += int64(n)
		c.f(c.p)
	}
	return n, err
}
