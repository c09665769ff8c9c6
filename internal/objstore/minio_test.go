package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vision-platform/vp/internal/testsupport"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func readAll(t *testing.T, s Getter, u URI, opts ...GetOption) ([]byte, Info) {
	t.Helper()
	r, info, err := s.Get(context.Background(), u, opts...)
	if err != nil {
		t.Fatalf("Get(%s) = %v", u, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %s: %v", u, err)
	}
	return b, info
}

func put(t *testing.T, s Putter, u URI, data string) Info {
	t.Helper()
	info, err := s.Put(context.Background(), u, strings.NewReader(data), int64(len(data)), WithContentType("text/plain"))
	if err != nil {
		t.Fatalf("Put(%s) = %v", u, err)
	}
	return info
}

// TestInt_MinIO runs every method of the MinIO store against a real MinIO
// server.
func TestInt_MinIO(t *testing.T) {
	testsupport.Integration(t)
	m := testsupport.StartMinIO(t)
	m.Bucket(t, "bkt")
	m.Bucket(t, "ver")
	ctx := context.Background()
	if err := m.Client.EnableVersioning(ctx, "ver"); err != nil {
		t.Fatal(err)
	}
	s := FromMinIO(m.Client)
	var _ Store = s

	t.Run("put hashes while sending", func(t *testing.T) {
		info := put(t, s, URI{"bkt", "hello.txt"}, "hello, world")
		if info.SHA256 != sum([]byte("hello, world")) || info.Size != 12 {
			t.Errorf("Put() = %+v, want size 12 and the sha256 of the bytes", info)
		}
		got, ginfo := readAll(t, s, URI{"bkt", "hello.txt"})
		if string(got) != "hello, world" || ginfo.Size != 12 || ginfo.ContentType != "text/plain" {
			t.Errorf("Get() = %q, %+v", got, ginfo)
		}
	})
	t.Run("put in parts above 64 MiB, from a reader that cannot seek", func(t *testing.T) {
		data := make([]byte, PartSize+1)
		r := rand.New(rand.NewPCG(1, 2))
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		info, err := s.Put(ctx, URI{"bkt", "big.bin"}, io.MultiReader(bytes.NewReader(data)), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if info.SHA256 != sum(data) {
			t.Errorf("Put() sha256 = %s, want %s", info.SHA256, sum(data))
		}
		st, err := s.Stat(ctx, URI{"bkt", "big.bin"})
		if err != nil || st.Size != int64(len(data)) || !strings.HasSuffix(st.ETag, "-2") {
			t.Errorf("Stat() = %+v, %v; want %d bytes in 2 parts", st, err, len(data))
		}
	})
	t.Run("get a range", func(t *testing.T) {
		got, info := readAll(t, s, URI{"bkt", "hello.txt"}, WithRange(7, 5))
		if string(got) != "world" || info.Size != 12 {
			t.Errorf("Get(range 7+5) = %q with size %d, want \"world\" of 12", got, info.Size)
		}
		got, _ = readAll(t, s, URI{"bkt", "hello.txt"}, WithRange(7, 0))
		if string(got) != "world" {
			t.Errorf("Get(range 7-) = %q, want \"world\"", got)
		}
	})
	t.Run("get with a size limit", func(t *testing.T) {
		if got, _ := readAll(t, s, URI{"bkt", "hello.txt"}, WithMaxSize(12)); string(got) != "hello, world" {
			t.Errorf("Get(max 12) = %q", got)
		}
		r, _, err := s.Get(ctx, URI{"bkt", "big.bin"}, WithMaxSize(1))
		if !errors.Is(err, ErrTooLarge) || r != nil {
			t.Errorf("Get(64 MiB, max 1) = %v, %v; want ErrTooLarge before any read", r, err)
		}
		if _, _, err := s.Get(ctx, URI{"bkt", "hello.txt"}, WithMaxSize(-1)); err == nil {
			t.Error("Get(max -1) = nil error")
		}
	})
	t.Run("not found", func(t *testing.T) {
		for _, u := range []URI{{"bkt", "nope"}, {"nobucket", "x"}} {
			if _, _, err := s.Get(ctx, u); !errors.Is(err, ErrNotFound) || Transient(err) {
				t.Errorf("Get(%s) = %v, want ErrNotFound, not transient", u, err)
			}
			if _, err := s.Stat(ctx, u); !errors.Is(err, ErrNotFound) {
				t.Errorf("Stat(%s) = %v, want ErrNotFound", u, err)
			}
		}
	})
	t.Run("versions", func(t *testing.T) {
		u := URI{"ver", "manifest.json"}
		v1 := put(t, s, u, "first")
		v2 := put(t, s, u, "second, longer")
		if v1.VersionID == "" || v1.VersionID == v2.VersionID {
			t.Fatalf("versions %q and %q, want two different ids", v1.VersionID, v2.VersionID)
		}
		if got, info := readAll(t, s, u, WithVersion(v1.VersionID)); string(got) != "first" || info.VersionID != v1.VersionID {
			t.Errorf("Get(version 1) = %q (version %s)", got, info.VersionID)
		}
		if got, _ := readAll(t, s, u); string(got) != "second, longer" {
			t.Errorf("Get(latest) = %q", got)
		}
		st, err := s.Stat(ctx, u, WithVersion(v1.VersionID))
		if err != nil || st.Size != 5 || st.VersionID != v1.VersionID {
			t.Errorf("Stat(version 1) = %+v, %v", st, err)
		}
		if _, _, err := s.Get(ctx, u, WithVersion("00000000-0000-0000-0000-000000000000")); err == nil || Transient(err) {
			t.Errorf("Get(unknown version) = %v, want a final error", err)
		}
	})
	t.Run("list a prefix", func(t *testing.T) {
		for _, k := range []string{"ds/a", "ds/b", "ds/sub/c", "other/d"} {
			put(t, s, URI{"bkt", k}, k)
		}
		var keys []string
		for info, err := range s.List(ctx, URI{"bkt", "ds/"}) {
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, info.URI.Key)
			if info.Size != int64(len(info.URI.Key)) {
				t.Errorf("List() %s has size %d", info.URI.Key, info.Size)
			}
		}
		if diff := cmp.Diff([]string{"ds/a", "ds/b", "ds/sub/c"}, keys); diff != "" {
			t.Errorf("List(ds/) (-want +got):\n%s", diff)
		}
		var errs int
		for _, err := range s.List(ctx, URI{"nobucket", ""}) {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("List(nobucket) = %v, want ErrNotFound", err)
			}
			errs++
		}
		if errs != 1 {
			t.Errorf("List(nobucket) yielded %d errors, want 1", errs)
		}
	})
	t.Run("presigned get and put", func(t *testing.T) {
		pu, err := s.PresignPut(ctx, URI{"bkt", "up.txt"}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodPut, pu.String(), strings.NewReader("via a presigned URL"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("presigned PUT answered %s", resp.Status)
		}
		gu, err := s.PresignGet(ctx, URI{"bkt", "up.txt"}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		resp, err = http.Get(gu.String())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || string(b) != "via a presigned URL" {
			t.Errorf("presigned GET = %s %q", resp.Status, b)
		}
	})
	t.Run("server-side copy", func(t *testing.T) {
		var c Copier = s
		src := URI{"bkt", "big.bin"} // 64 MiB and a byte, from the test above
		want, _ := readAll(t, s, src)
		for _, dst := range []URI{{"bkt", "copies/big.bin"}, {"ver", "copies/big.bin"}} {
			info, err := c.Copy(ctx, dst, src)
			if err != nil {
				t.Fatalf("Copy(%s, %s) = %v", dst, src, err)
			}
			if info.URI != dst || info.Size != int64(len(want)) || info.ETag == "" {
				t.Errorf("Copy(%s) = %+v, want %s of %d bytes with an ETag", dst, info, dst, len(want))
			}
			// Again: the same bytes at the same key.
			if _, err := c.Copy(ctx, dst, src); err != nil {
				t.Fatalf("Copy(%s) again = %v", dst, err)
			}
			if got, _ := readAll(t, s, dst); sum(got) != sum(want) {
				t.Errorf("the copy at %s has sha256 %s, want %s", dst, sum(got), sum(want))
			}
		}
		info, err := c.Copy(ctx, URI{"bkt", "copies/hello.txt"}, URI{"bkt", "hello.txt"})
		if err != nil || info.ContentType != "text/plain" || info.Size != 12 {
			t.Errorf("Copy(hello.txt) = %+v, %v; want its 12 bytes and content type", info, err)
		}
		if got, ginfo := readAll(t, s, URI{"bkt", "copies/hello.txt"}); string(got) != "hello, world" || ginfo.ContentType != "text/plain" {
			t.Errorf("the copy of hello.txt = %q, %+v", got, ginfo)
		}
		for _, tc := range []struct{ dst, src URI }{
			{URI{"bkt", "copies/nope"}, URI{"bkt", "nope"}},
			{URI{"bkt", "copies/nope"}, URI{"nobucket", "x"}},
			{URI{"nobucket", "x"}, URI{"bkt", "hello.txt"}},
		} {
			if _, err := c.Copy(ctx, tc.dst, tc.src); !errors.Is(err, ErrNotFound) || Transient(err) {
				t.Errorf("Copy(%s, %s) = %v, want ErrNotFound, not transient", tc.dst, tc.src, err)
			}
		}
		if _, err := s.Stat(ctx, URI{"bkt", "copies/nope"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("a failed copy left an object: Stat() = %v", err)
		}
	})
	t.Run("an unreachable store is transient", func(t *testing.T) {
		gone, err := NewMinIO("http://"+testsupport.FreeAddr(t), Credentials{}, false)
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if _, err := gone.Stat(sctx, URI{"bkt", "x"}); err == nil || !Transient(err) {
			t.Errorf("Stat() on nothing listening = %v, want a transient error", err)
		}
	})
}
