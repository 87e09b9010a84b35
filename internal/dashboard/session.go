package dashboard

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	sessionCookie = "wisp_session"
	csrfField     = "csrf"
	csrfHeader    = "X-CSRF-Token"
)

// sessions signs and checks stateless session cookies: the value is the
// expiry and an HMAC of it under a key derived from the admin token, so any
// replica with the same token accepts it and a new token ends every session.
type sessions struct {
	key    []byte
	token  string
	ttl    time.Duration
	secure bool
	now    func() time.Time
}

func newSessions(token string, ttl time.Duration, secure bool, now func() time.Time) *sessions {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("wisp dashboard session key v1"))
	return &sessions{key: m.Sum(nil), token: token, ttl: ttl, secure: secure, now: now}
}

func (s *sessions) mac(parts ...string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(strings.Join(parts, "|")))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// issue returns a new session value.
func (s *sessions) issue() string {
	exp := strconv.FormatInt(s.now().Add(s.ttl).Unix(), 10)
	return exp + "." + s.mac("session", exp)
}

// valid reports whether v is a session value this key signed that has not
// expired.
func (s *sessions) valid(v string) bool {
	exp, sig, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || s.now().Unix() >= n {
		return false
	}
	return hmac.Equal([]byte(sig), []byte(s.mac("session", exp)))
}

// csrf is the CSRF token of session value v.
func (s *sessions) csrf(v string) string { return s.mac("csrf", v) }

// checkToken reports whether t is the admin token (in constant time).
func (s *sessions) checkToken(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(s.token)) == 1
}

func (s *sessions) cookie(value string, maxAge int) *http.Cookie {
	// Secure only over TLS: a plain-HTTP admin server on loopback must work.
	return &http.Cookie{Name: sessionCookie, Value: value, Path: "/ui/", MaxAge: maxAge, //nolint:gosec // G124: HttpOnly and SameSite=Strict always; Secure whenever the admin server speaks TLS
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secure}
}

// auth is who a request is.
type auth struct {
	ok      bool
	session string // the session cookie's value; "" when authenticated by header
	bearer  bool
}

func (s *sessions) authenticate(r *http.Request) auth {
	if h := r.Header.Get("Authorization"); h != "" {
		t, ok := strings.CutPrefix(h, "Bearer ")
		return auth{ok: ok && s.checkToken(t), bearer: true}
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || !s.valid(c.Value) {
		return auth{}
	}
	return auth{ok: true, session: c.Value}
}

// sameOrigin reports whether a state-changing request comes from the
// dashboard's own origin. Sec-Fetch-Site, which browsers send, must be
// same-origin (or none: typed by the user). Without it, Origin, when
// present, must be this host. Under Referrer-Policy no-referrer a browser
// sends "Origin: null" with a form, so "null" counts only with
// Sec-Fetch-Site.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		o := r.Header.Get("Origin")
		return o == "" || o == "null" || originIs(o, r.Host)
	case "":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	return o == "" || originIs(o, r.Host)
}

func originIs(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && u.Host == host
}
