package kube

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wisp-run/wisp/internal/core"
)

// TestResolveImage against a real registry server on loopback: a tag
// becomes repository@digest, a pinned reference is checked, and what the
// registry lacks is an invalid error naming it.
func TestResolveImage(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host + "/greeter:1")
	if err := remote.Write(ref, img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()
	want := host + "/greeter@" + digest.String()
	k := &Kube{cfg: Config{Keychain: authn.DefaultKeychain}}
	for _, r := range []string{host + "/greeter:1", want} {
		got, err := k.ResolveImage(t.Context(), r)
		if err != nil || got != want {
			t.Errorf("ResolveImage(%s) = %q, %v; want %q", r, got, err, want)
		}
	}
	for _, r := range []string{host + "/greeter:2", host + "/nothing:1", host + "/greeter@sha256:" + strings.Repeat("0", 64), "Bad Ref"} {
		_, err := k.ResolveImage(t.Context(), r)
		if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), r) {
			t.Errorf("ResolveImage(%s): %v, want an invalid error naming it", r, err)
		}
	}
}
