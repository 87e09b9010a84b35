package api

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/wisp-run/wisp/internal/core"
)

type trafficHistory struct {
	Entries []core.TrafficEntry `json:"entries"`
}

type rollbackRequest struct {
	// ToEntry is the history entry to restore; 0 or omitted means the entry
	// before the current one.
	ToEntry int64 `json:"to_entry"`
}

// etag is the entity tag of a traffic entry: its ID, quoted (RFC 9110,
// section 8.8.3). The current entry's ETag changes with every change of
// the split, since every change appends an entry.
func etag(id int64) string { return `"` + strconv.FormatInt(id, 10) + `"` }

// ifMatch reads the If-Match header of a traffic write (RFC 9110, section
// 13.1.1) as the store's condition: none is 0, "*" is core.AnyEntry, and one
// strong ETag of GET …/traffic is its entry ID. A weak ETag never matches
// under If-Match's strong comparison.
func ifMatch(r *http.Request) (int64, error) {
	values := r.Header.Values("If-Match")
	if len(values) == 0 {
		return 0, nil
	}
	v := strings.TrimSpace(strings.Join(values, ","))
	if v == "*" {
		return core.AnyEntry, nil
	}
	if strings.HasPrefix(v, `W/`) {
		if _, ok := parseETag(v[2:]); ok {
			return 0, core.PreconditionFailedf("If-Match %s is a weak ETag, which never matches; send the ETag of GET /v1/services/%s/traffic as it is", v, r.PathValue("name"))
		}
	}
	if id, ok := parseETag(v); ok {
		return id, nil
	}
	if len(v) > 80 {
		v = v[:80] + "…"
	}
	return 0, &requestError{status: http.StatusBadRequest, code: "bad_request", field: "If-Match",
		msg: `If-Match ` + strconv.Quote(v) + ` must be "*" or one ETag of GET /v1/services/{name}/traffic, such as "12" with its quotes`}
}

// parseETag reads `"<entry id>"`.
func parseETag(s string) (int64, bool) {
	digits, ok := strings.CutPrefix(s, `"`)
	if !ok {
		return 0, false
	}
	if digits, ok = strings.CutSuffix(digits, `"`); !ok || digits == "" || len(digits) > 18 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseInt(digits, 10, 64)
	return id, err == nil && id > 0
}

func writeEntry(w http.ResponseWriter, status int, e core.TrafficEntry) error {
	w.Header().Set("ETag", etag(e.ID))
	return writeJSON(w, status, e)
}

func (s *Server) setTraffic(w http.ResponseWriter, r *http.Request) error {
	cond, err := ifMatch(r)
	if err != nil {
		return err
	}
	var t core.Traffic
	if err := s.decode(w, r, &t, false); err != nil {
		return err
	}
	e, err := s.store.SetTraffic(r.Context(), r.PathValue("name"), t, cond)
	if err != nil {
		return err
	}
	s.trafficChanged(r, e, client(r))
	return writeEntry(w, http.StatusOK, e)
}

func (s *Server) getTraffic(w http.ResponseWriter, r *http.Request) error {
	e, err := s.store.GetTraffic(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeEntry(w, http.StatusOK, e)
}

func (s *Server) trafficHistory(w http.ResponseWriter, r *http.Request) error {
	list, err := s.store.TrafficHistory(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, trafficHistory{Entries: list})
}

func (s *Server) rollbackTraffic(w http.ResponseWriter, r *http.Request) error {
	cond, err := ifMatch(r)
	if err != nil {
		return err
	}
	var req rollbackRequest
	if err := s.decode(w, r, &req, true); err != nil {
		return err
	}
	if req.ToEntry < 0 {
		return core.Invalidf("to_entry", "to_entry must be a traffic entry ID, got %d", req.ToEntry)
	}
	e, err := s.store.RollbackTraffic(r.Context(), r.PathValue("name"), req.ToEntry, cond)
	if err != nil {
		return err
	}
	s.trafficChanged(r, e, "rollback")
	return writeEntry(w, http.StatusCreated, e)
}
