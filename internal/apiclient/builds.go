package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"

	"github.com/wisp-run/wisp/internal/core"
)

// CreateBuild uploads a build context (a tar stream of size bytes, or -1 if
// unknown) with its request and returns the queued build. progress, when
// not nil, is called with the bytes sent so far.
func (c *Client) CreateBuild(ctx context.Context, req core.BuildRequest, tar io.Reader, progress func(sent int64)) (core.Build, error) {
	meta, err := json.Marshal(req)
	if err != nil {
		return core.Build{}, fmt.Errorf("encode build request: %w", err)
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", `form-data; name="build"`)
			h.Set("Content-Type", "application/json")
			part, err := mw.CreatePart(h)
			if err != nil {
				return err
			}
			if _, err := part.Write(meta); err != nil {
				return err
			}
			h = textproto.MIMEHeader{}
			h.Set("Content-Disposition", `form-data; name="context"; filename="context.tar"`)
			h.Set("Content-Type", "application/x-tar")
			if part, err = mw.CreatePart(h); err != nil {
				return err
			}
			var sent int64
			buf := make([]byte, 256<<10)
			for {
				n, rerr := tar.Read(buf)
				if n > 0 {
					if _, err := part.Write(buf[:n]); err != nil {
						return err
					}
					sent += int64(n)
					if progress != nil {
						progress(sent)
					}
				}
				if rerr == io.EOF {
					break
				}
				if rerr != nil {
					return rerr
				}
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	resp, err := c.send(ctx, c.streaming, http.MethodPost, "/v1/builds", mw.FormDataContentType(), pr)
	_ = pr.Close() // stops the writer if the server answered early
	if err != nil {
		return core.Build{}, err
	}
	defer resp.Body.Close()
	var b core.Build
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		return core.Build{}, fmt.Errorf("decode build: %w", err)
	}
	return b, nil
}

// GetBuild returns build id.
func (c *Client) GetBuild(ctx context.Context, id int64) (core.Build, error) {
	var b core.Build
	err := c.do(ctx, http.MethodGet, "/v1/builds/"+strconv.FormatInt(id, 10), nil, &b)
	return b, err
}

// ListBuilds returns the newest builds (of service, or of all for "").
func (c *Client) ListBuilds(ctx context.Context, service string, limit int) ([]core.Build, error) {
	q := url.Values{}
	if service != "" {
		q.Set("service", service)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/builds"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Builds []core.Build `json:"builds"`
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Builds, err
}

// BuildLogs returns the output of build id; with follow it streams until
// the build ends. The caller closes it.
func (c *Client) BuildLogs(ctx context.Context, id int64, follow bool) (io.ReadCloser, error) {
	resp, err := c.send(ctx, c.streaming, http.MethodGet, "/v1/builds/"+strconv.FormatInt(id, 10)+"/logs?follow="+strconv.FormatBool(follow), "", nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
