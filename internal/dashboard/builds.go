package dashboard

import (
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/wisp-run/wisp/internal/core"
)

type buildPageData struct {
	Build core.Build
	Log   string
	// Follow is where the page streams the rest of the log from while the
	// build runs.
	Follow string
}

func (d *Dashboard) buildPage(w http.ResponseWriter, r *http.Request, a auth) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return formErrorf("a build's id is a positive number, got %q", r.PathValue("id"))
	}
	b, err := d.api.GetBuild(r.Context(), id)
	if err != nil {
		return err
	}
	p := &buildPageData{Build: b}
	if b.Status == core.BuildQueued || b.Status == core.BuildRunning {
		p.Follow = fmt.Sprintf("/ui/builds/%d/log", id)
	}
	rc, err := d.api.BuildLogs(r.Context(), id, false)
	if err != nil {
		p.Log = "(no log: " + err.Error() + ")"
	} else {
		defer rc.Close()
		lb, _ := io.ReadAll(io.LimitReader(rc, 2<<20))
		p.Log = string(lb)
	}
	d.render(w, r, http.StatusOK, "build", pageData{Title: fmt.Sprintf("Build %d", id), Nav: "services", CSRF: d.csrfOf(a), Data: p})
	return nil
}

// buildLogStream hands a running build's log to the page as the API
// streams it (text/plain, followed until the build ends).
func (d *Dashboard) buildLogStream(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		http.Error(w, "a build's id is a positive number", http.StatusBadRequest)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, fmt.Sprintf("/v1/builds/%d/logs?follow=true", id), nil) //nolint:gosec // G704: served by the API's handler in this process, never sent over a network
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req.RequestURI = req.URL.RequestURI()
	req.RemoteAddr, req.Host = r.RemoteAddr, r.Host
	req.Header.Set("Authorization", "Bearer "+d.cfg.Token)
	d.cfg.API.ServeHTTP(w, req)
}
