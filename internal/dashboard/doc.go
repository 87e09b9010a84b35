// Package dashboard is Wisp's web UI, served by the admin server at /ui/.
//
// Pages are rendered on the server with html/template from templates
// embedded in the binary, so every page is readable without JavaScript; a
// small script of our own (static/app.js) adds live numbers, charts and log
// following through fetch and EventSource. Charts are SVG rendered here.
//
// Every read and change goes through the admin API's own http.Handler in
// the same process (an apiclient.Client whose transport calls the handler),
// so validation, error messages and events are exactly what the CLI gets.
// Live numbers come from a Sampler that reads the Prometheus registry every
// few seconds and keeps an hour of points per version.
//
// Security: a login form exchanges the admin token for a stateless session
// cookie (an HMAC of its expiry under a key derived from the token), every
// change carries a CSRF token derived from the session and must come from
// the same origin, and every response has a strict Content-Security-Policy.
// See docs/dashboard.md.
package dashboard
