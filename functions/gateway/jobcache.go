package gateway

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/vision-platform/vp/internal/ledger"
	"github.com/vision-platform/vp/internal/objstore"
)

// Cache lifetimes: a job's status is read again after statusTTL (a
// finished job's after doneTTL: only a late duplicate could change it);
// the list of job ids after listTTL.
const (
	statusTTL = time.Second
	doneTTL   = 30 * time.Second
	listTTL   = time.Second
)

// minioClient is the optional ability of a store to hand out MinIO's
// client, for what objstore.Store lacks (listing one level, multipart).
type minioClient interface {
	Client() *minio.Client
}

// jobCache reads job statuses from the ledger, keeping each for a short
// while, so that many clients reading the same jobs cost the store one
// read per job and second; concurrent misses share one read.
type jobCache struct {
	store  objstore.Store
	ledger *ledger.Ledger
	flight singleflight.Group

	mu       sync.Mutex
	ids      []string
	idsAt    time.Time
	statuses map[string]cachedStatus
}

type cachedStatus struct {
	s  ledger.JobStatus
	at time.Time
}

func newJobCache(store objstore.Store, l *ledger.Ledger) *jobCache {
	return &jobCache{store: store, ledger: l, statuses: map[string]cachedStatus{}}
}

// status is a job's status (objstore.ErrNotFound wrapped when the ledger
// has none).
func (c *jobCache) status(ctx context.Context, id string) (ledger.JobStatus, error) {
	c.mu.Lock()
	cs, ok := c.statuses[id]
	c.mu.Unlock()
	if ok {
		ttl := statusTTL
		if ledger.Terminal(cs.s.State) {
			ttl = doneTTL
		}
		if time.Since(cs.at) < ttl {
			return cs.s, nil
		}
	}
	v, err, _ := c.flight.Do("job/"+id, func() (any, error) {
		s, err := c.ledger.Job(context.WithoutCancel(ctx), id)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.statuses[id] = cachedStatus{s: s, at: time.Now()}
		c.mu.Unlock()
		return s, nil
	})
	if err != nil {
		return ledger.JobStatus{}, err
	}
	return v.(ledger.JobStatus), nil
}

// forget drops a job's cached status (after the gateway changed it).
func (c *jobCache) forget(id string) {
	c.mu.Lock()
	delete(c.statuses, id)
	c.mu.Unlock()
}

// list is every job id of the ledger.
func (c *jobCache) list(ctx context.Context) ([]string, error) {
	c.mu.Lock()
	if time.Since(c.idsAt) < listTTL {
		ids := c.ids
		c.mu.Unlock()
		return ids, nil
	}
	c.mu.Unlock()
	v, err, _ := c.flight.Do("list", func() (any, error) {
		ids, err := c.listIDs(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		keep := make(map[string]bool, len(ids))
		for _, id := range ids {
			keep[id] = true
		}
		c.mu.Lock()
		c.ids, c.idsAt = ids, time.Now()
		for id := range c.statuses {
			if !keep[id] {
				delete(c.statuses, id)
			}
		}
		c.mu.Unlock()
		return ids, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]string), nil
}

// listIDs lists the job folders of the ledger: one level with MinIO's
// client (the ledger's own listing walks every event of every job).
func (c *jobCache) listIDs(ctx context.Context) ([]string, error) {
	mc, ok := c.store.(minioClient)
	if !ok {
		return c.ledger.Jobs(ctx)
	}
	var out []string
	for oi := range mc.Client().ListObjectsIter(ctx, c.ledger.Bucket(), minio.ListObjectsOptions{Prefix: "jobs/"}) {
		if oi.Err != nil {
			return nil, fmt.Errorf("listing jobs: %w", oi.Err)
		}
		if strings.HasSuffix(oi.Key, "/") {
			out = append(out, path.Base(oi.Key))
		}
	}
	return out, nil
}

// all is the status of every job; a job listed but without a status yet
// is left out.
func (c *jobCache) all(ctx context.Context) ([]ledger.JobStatus, error) {
	ids, err := c.list(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ledger.JobStatus, len(ids))
	have := make([]bool, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, id := range ids {
		g.Go(func() error {
			s, err := c.status(gctx, id)
			if errors.Is(err, objstore.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			out[i], have[i] = s, true
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	kept := out[:0]
	for i := range out {
		if have[i] {
			kept = append(kept, out[i])
		}
	}
	return kept, nil
}
