package apiclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

// LogValues returns q as the query of GET /v1/services/{name}/logs.
func LogValues(q core.LogQuery) url.Values {
	v := url.Values{}
	if q.Version > 0 {
		v.Set("version", strconv.Itoa(q.Version))
	}
	if q.Instance != "" {
		v.Set("instance", q.Instance)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.Tail > 0 {
		v.Set("tail", strconv.Itoa(q.Tail))
	}
	if q.Follow {
		v.Set("follow", "true")
	}
	if q.Contains != "" {
		v.Set("q", q.Contains)
	}
	if len(q.Kinds) > 0 {
		kinds := make([]string, len(q.Kinds))
		for i, k := range q.Kinds {
			kinds[i] = string(k)
		}
		v.Set("kind", strings.Join(kinds, ","))
	}
	return v
}

// Logs calls fn with each entry of service's log stream that q selects
// (q.Service is ignored), in order; with q.Follow until ctx ends (then it
// returns nil). q.AfterSeq resumes after that entry. An error from fn ends
// the stream and is returned.
func (c *Client) Logs(ctx context.Context, service string, q core.LogQuery, fn func(core.LogEntry) error) error {
	path := "/v1/services/" + url.PathEscape(service) + "/logs"
	if v := LogValues(q); len(v) > 0 {
		path += "?" + v.Encode()
	}
	header := http.Header{}
	if q.AfterSeq > 0 {
		header.Set("Last-Event-ID", strconv.FormatUint(q.AfterSeq, 10))
	}
	resp, err := c.sendHeader(ctx, c.streaming, http.MethodGet, path, "", nil, header)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 1 {
			var e core.LogEntry
			if jerr := json.Unmarshal(line, &e); jerr != nil {
				return fmt.Errorf("decode log entry: %w", jerr)
			}
			if ferr := fn(e); ferr != nil {
				return ferr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) || (q.Follow && ctx.Err() != nil) {
				return nil
			}
			return fmt.Errorf("read logs: %w", err)
		}
	}
}
