package kube

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/wisp-run/wisp/internal/core"
)

// ResolveImage implements runtime.Runtime. The cluster's nodes pull the
// image, not this process, so it is resolved against its registry: a tag
// becomes the digest it names now, and a reference pinned by digest is
// checked to exist. It returns "repository@sha256:…".
func (k *Kube) ResolveImage(ctx context.Context, ref string) (string, error) {
	var opts []name.Option
	if r, err := name.ParseReference(ref); err == nil && slices.Contains(k.cfg.InsecureRegistries, r.Context().RegistryStr()) {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return "", core.Invalidf("image", "image %q is not a valid reference: %v", ref, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	desc, err := remote.Head(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(k.cfg.Keychain))
	if err != nil {
		var te *transport.Error
		switch {
		case errors.As(err, &te) && (te.StatusCode == http.StatusNotFound || hasCode(te, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode)):
			return "", core.Invalidf("image", "image %q is not in registry %s", ref, r.Context().RegistryStr())
		case errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden):
			return "", core.Invalidf("image", "registry %s refused access to image %q (%d); give wisp credentials for it: %v",
				r.Context().RegistryStr(), ref, te.StatusCode, err)
		}
		return "", core.Invalidf("image", "image %q cannot be resolved against registry %s, which the cluster pulls from: %v", ref, r.Context().RegistryStr(), err)
	}
	return r.Context().Name() + "@" + desc.Digest.String(), nil
}

func hasCode(te *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range te.Errors {
		if slices.Contains(codes, d.Code) {
			return true
		}
	}
	return false
}
