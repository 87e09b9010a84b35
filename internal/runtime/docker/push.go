package docker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/moby/client"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/runtime"
)

var _ runtime.Pusher = (*Builder)(nil)

// Push implements runtime.Pusher with the engine's push API. The engine
// treats registries on 127.0.0.0/8 as plain HTTP without configuration;
// others need TLS or the engine's insecure-registries setting.
func (d *Builder) Push(ctx context.Context, ref string, auth runtime.RegistryAuth, progress func(line string)) (string, error) {
	repo, _, ok := splitTag(ref)
	if !ok {
		return "", core.Invalidf("image", "push %s: the reference needs a tag (registry/repository:tag)", ref)
	}
	// Engines before API 1.42 refuse a push without the auth header, so an
	// anonymous push sends an empty one.
	creds := map[string]string{}
	if auth.Username != "" || auth.Password != "" {
		creds = map[string]string{"username": auth.Username, "password": auth.Password, "serveraddress": auth.Server}
	}
	b, err := json.Marshal(creds)
	if err != nil {
		return "", err
	}
	opts := client.ImagePushOptions{RegistryAuth: base64.URLEncoding.EncodeToString(b)}
	resp, err := d.cli.ImagePush(ctx, ref, opts)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	defer func() { _ = resp.Close() }()
	var digest string
	for m, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return "", fmt.Errorf("push %s: %w", ref, err)
		}
		if m.Error != nil {
			return "", pushError(ref, m.Error.Message)
		}
		if m.Aux != nil {
			var aux struct {
				Digest string `json:"Digest"`
			}
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.Digest != "" {
				digest = aux.Digest
			}
		}
		if progress != nil && m.Status != "" && m.Progress == nil {
			line := m.Status
			if m.ID != "" {
				line = m.ID + ": " + line
			}
			progress(line)
		}
	}
	if digest == "" {
		return "", fmt.Errorf("push %s: the engine reported no digest", ref)
	}
	return repo + "@" + digest, nil
}

// pushError classifies an error the engine reports during a push: refused
// credentials and unreachable registries are the user's to fix.
func pushError(ref, msg string) error {
	low := strings.ToLower(msg)
	for _, s := range []string{"unauthorized", "denied", "authentication required", "no such host", "connection refused", "server gave http response to https client"} {
		if strings.Contains(low, s) {
			return core.Invalidf("registry", "push %s: %s", ref, msg)
		}
	}
	return errors.New("push " + ref + ": " + msg)
}

// splitTag splits "host:port/repo:tag" into "host:port/repo" and "tag".
func splitTag(ref string) (repo, tag string, ok bool) {
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") || strings.Contains(ref, "@") {
		return ref, "", false
	}
	return ref[:i], ref[i+1:], true
}
