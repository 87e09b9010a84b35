package apiclient_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wisp-run/wisp/internal/apiclient"
)

// TestClientHeader: the client says who it is in Wisp-Client, "cli" unless
// told otherwise; the API reports it as who changed traffic.
func TestClientHeader(t *testing.T) {
	got := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Wisp-Client")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"services":[]}`))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		opts []apiclient.Option
		want string
	}{{"default", nil, "cli"}, {"dashboard", []apiclient.Option{apiclient.WithClientName("dashboard")}, "dashboard"}} {
		t.Run(tc.name, func(t *testing.T) {
			c := apiclient.New(srv.URL, "tok", tc.opts...)
			_, _ = c.ListServices(t.Context())
			if h := <-got; h != tc.want {
				t.Fatalf("Wisp-Client %q, want %q", h, tc.want)
			}
		})
	}
}
