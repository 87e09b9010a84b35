package dashboard

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wisp-run/wisp/internal/core"
)

type logsPageData struct {
	Service           string
	Version, Instance string
	Q, Since, Tail    string
	Kinds             map[string]bool
	Entries           []core.LogEntry
	Unavailable       string
	StreamURL         string
}

// logQuery builds the logs API's query from the page's filters.
func logQuery(q url.Values) url.Values {
	out := url.Values{}
	for _, k := range []string{"version", "instance", "q", "since"} {
		if v := strings.TrimSpace(q.Get(k)); v != "" {
			out.Set(k, v)
		}
	}
	var kinds []string
	for _, k := range q["kind"] {
		for _, part := range strings.Split(k, ",") {
			if part = strings.TrimSpace(part); part != "" {
				kinds = append(kinds, part)
			}
		}
	}
	if len(kinds) > 0 {
		out.Set("kind", strings.Join(kinds, ","))
	}
	return out
}

func (d *Dashboard) logsPage(w http.ResponseWriter, r *http.Request, a auth) error {
	name := r.PathValue("name")
	if _, err := d.api.GetService(r.Context(), name); err != nil {
		return err
	}
	q := r.URL.Query()
	p := &logsPageData{Service: name, Version: q.Get("version"), Instance: q.Get("instance"), Q: q.Get("q"),
		Since: q.Get("since"), Tail: q.Get("tail"), Kinds: map[string]bool{}}
	if p.Tail == "" {
		p.Tail = "200"
	}
	filters := logQuery(q)
	for _, k := range strings.Split(filters.Get("kind"), ",") {
		p.Kinds[k] = true
	}
	filters.Set("tail", p.Tail)
	status, body, err := d.callAPI(r, "/v1/services/"+url.PathEscape(name)+"/logs?"+filters.Encode(), "application/x-ndjson")
	switch {
	case err != nil:
		return err
	case status == http.StatusServiceUnavailable && strings.Contains(string(body), "logs are not available"):
		p.Unavailable = "This daemon keeps no logs (it was started without a log store)."
	case status >= 400:
		var eb struct {
			Error struct{ Message string } `json:"error"`
		}
		_ = json.Unmarshal(body, &eb)
		msg := eb.Error.Message
		if msg == "" {
			msg = strings.TrimSpace(string(body))
		}
		d.render(w, r, status, "logs", pageData{Title: name + " logs", Nav: "services", CSRF: d.csrfOf(a), Data: p, Error: msg})
		return nil
	default:
		sc := bufio.NewScanner(strings.NewReader(string(body)))
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			var e core.LogEntry
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				p.Entries = append(p.Entries, e)
			}
		}
	}
	// Following starts where the lines shown end (the page drops lines it
	// already has, by seq), so nothing between the two is missed.
	stream := logQuery(q)
	if n := len(p.Entries); n > 0 && stream.Get("since") == "" {
		stream.Set("since", p.Entries[n-1].Time.UTC().Format(time.RFC3339Nano))
	}
	p.StreamURL = "/ui/services/" + url.PathEscape(name) + "/logs/stream?" + stream.Encode()
	d.render(w, r, http.StatusOK, "logs", pageData{Title: name + " logs", Nav: "services", CSRF: d.csrfOf(a), Data: p})
	return nil
}

// callAPI sends one GET to the API's handler and returns its whole answer
// (for routes whose body is not JSON).
func (d *Dashboard) callAPI(r *http.Request, path, accept string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://wisp-admin.internal"+path, nil) //nolint:gosec // G704: served by the API's handler in this process, never sent over a network
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.cfg.Token)
	req.Header.Set("Accept", accept)
	resp, err := handlerTransport{d.cfg.API}.RoundTrip(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, b, err
}

// logStream hands a browser's EventSource to the logs API's event stream:
// the API's handler writes straight to this response, so follow, keepalives
// and Last-Event-ID behave as the API documents.
func (d *Dashboard) logStream(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	q := logQuery(r.URL.Query())
	q.Set("follow", "true")
	if t := r.URL.Query().Get("tail"); t != "" {
		q.Set("tail", t)
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "/v1/services/"+url.PathEscape(name)+"/logs?"+q.Encode(), nil) //nolint:gosec // G704: served by the API's handler in this process, never sent over a network
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req.RequestURI = req.URL.RequestURI()
	req.RemoteAddr, req.Host = r.RemoteAddr, r.Host
	req.Header.Set("Authorization", "Bearer "+d.cfg.Token)
	req.Header.Set("Accept", "text/event-stream")
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		req.Header.Set("Last-Event-ID", id)
	}
	d.cfg.API.ServeHTTP(w, req)
}
