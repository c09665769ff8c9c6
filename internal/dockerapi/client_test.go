package dockerapi

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	for _, c := range []struct {
		desc, host string
		base       string // "" when an error is wanted
	}{
		{"default", "", "http://docker"},
		{"unix", "unix:///run/user/1000/docker.sock", "http://docker"},
		{"tcp", "tcp://10.0.0.5:2376", "http://10.0.0.5:2376"},
		{"tcp without port", "tcp://engine", "http://engine:2375"},
		{"ssh", "ssh://me@engine", ""},
		{"unix without path", "unix://", ""},
		{"no scheme", "/var/run/docker.sock", ""},
	} {
		t.Run(c.desc, func(t *testing.T) {
			cl, err := New(c.host)
			if c.base == "" {
				if !errors.Is(err, ErrUnsupportedHost) {
					t.Errorf("New(%q) = %v, want ErrUnsupportedHost", c.host, err)
				}
				return
			}
			if err != nil || cl.base != c.base {
				t.Errorf("New(%q) = base %v, %v; want %s", c.host, cl, err, c.base)
			}
		})
	}
	if _, err := New("", WithVersion("one")); err == nil {
		t.Error("WithVersion(one) accepted")
	}
}

func TestNegotiate(t *testing.T) {
	for _, c := range []struct{ engine, want string }{
		{"1.41", "1.41"},
		{"1.40", "1.40"},
		{"1.52", NewestAPI},
		{"2.0", NewestAPI},
		{"", OldestAPI},
		{"1.39", ""},
		{"1.9", ""},
	} {
		got, err := negotiate(c.engine)
		if c.want == "" {
			if !errors.Is(err, ErrOldEngine) {
				t.Errorf("negotiate(%q) = %q, %v; want ErrOldEngine", c.engine, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("negotiate(%q) = %q, %v; want %s", c.engine, got, err, c.want)
		}
	}
}

func TestPullParams(t *testing.T) {
	digest := "sha256:" + strings.Repeat("a", 64)
	for _, c := range []struct{ ref, repo, tag string }{
		{"127.0.0.1:5000/vp/torchvision-cpu@" + digest, "127.0.0.1:5000/vp/torchvision-cpu", digest},
		{"registry:5000/vp/timm:latest", "registry:5000/vp/timm", "latest"},
		{"registry:5000/vp/timm:v1@" + digest, "registry:5000/vp/timm", digest},
		{"debian", "debian", "latest"},
		{"docker.io/library/debian:bookworm", "debian", "bookworm"},
	} {
		repo, tag, err := PullParams(c.ref)
		if err != nil || repo != c.repo || tag != c.tag {
			t.Errorf("PullParams(%q) = %q, %q, %v; want %q, %q", c.ref, repo, tag, err, c.repo, c.tag)
		}
	}
	if _, _, err := PullParams("Not A Reference"); err == nil {
		t.Error("PullParams of an invalid reference succeeded")
	}
}

func TestDemux(t *testing.T) {
	frame := func(stream byte, s string) []byte {
		n := len(s)
		return append([]byte{stream, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, s...)
	}
	big := strings.Repeat("x", 70000)
	for _, c := range []struct {
		desc string
		in   []byte
		want string
		err  bool
	}{
		{"frames", append(append(frame(1, "out\n"), frame(2, "err\n")...), frame(1, big)...), "out\nerr\n" + big, false},
		{"empty", nil, "", false},
		{"raw (a TTY)", []byte("plain text from a tty\n"), "plain text from a tty\n", false},
		{"short raw", []byte("hi"), "hi", false},
		{"truncated frame", frame(1, "abc")[:9], "a", true},
	} {
		var out bytes.Buffer
		err := Demux(&out, bytes.NewReader(c.in))
		if out.String() != c.want || (err != nil) != c.err {
			t.Errorf("%s: Demux = %q, %v; want %q (error: %v)", c.desc, out.String(), err, c.want, c.err)
		}
	}
}
