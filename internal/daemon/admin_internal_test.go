package daemon

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestExposed(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8081": false, "127.0.0.2:8081": false, "[::1]:8081": false,
		"0.0.0.0:8081": true, "[::]:8081": true, "192.0.2.7:8081": true, "[2001:db8::1]:8081": true,
	} {
		tcp, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := exposed(tcp); got != want {
			t.Errorf("exposed(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestAdminHandlerMountsTheDashboard(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("X-Part", "api") })
	ui := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("X-Part", "ui") })
	h := adminHandler(api, ui)
	for _, tc := range []struct{ method, path, part, location string }{
		{"GET", "/ui/", "ui", ""},
		{"POST", "/ui/login", "ui", ""},
		{"GET", "/ui/static/app.js", "ui", ""},
		{"GET", "/ui", "", "/ui/"},
		{"GET", "/v1/services", "api", ""},
		{"GET", "/uix", "api", ""},
		{"GET", "/", "api", ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if got := rec.Header().Get("X-Part"); got != tc.part || rec.Header().Get("Location") != tc.location {
			t.Errorf("%s %s: served by %q, Location %q; want %q, %q", tc.method, tc.path, got, rec.Header().Get("Location"), tc.part, tc.location)
		}
	}
}
