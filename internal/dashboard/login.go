package dashboard

import (
	"net/http"
	"strings"
)

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	if d.sess.authenticate(r).ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther) //nolint:gosec // G710: safeNext keeps it under /ui/
		return
	}
	d.render(w, r, http.StatusOK, "login", pageData{Title: "Log in", Data: safeNext(r.URL.Query().Get("next"))})
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	next := safeNext(r.PostFormValue("next"))
	if !sameOrigin(r) {
		d.render(w, r, http.StatusForbidden, "login", pageData{Title: "Log in", Data: next,
			Error: "Refused: the login form was sent from another site."})
		return
	}
	if !d.sess.checkToken(strings.TrimSpace(r.PostFormValue("token"))) {
		d.log.Warn("dashboard: a login with a wrong token", "remote", r.RemoteAddr)
		d.render(w, r, http.StatusUnauthorized, "login", pageData{Title: "Log in", Data: next,
			Error: "Wrong token: that is not this daemon's admin token (wisp serve prints where it is kept; or --admin-token)."})
		return
	}
	http.SetCookie(w, d.sess.cookie(d.sess.issue(), int(d.cfg.SessionTTL.Seconds())))
	http.Redirect(w, r, next, http.StatusSeeOther) //nolint:gosec // G710: safeNext keeps it under /ui/
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, _ auth) error {
	http.SetCookie(w, d.sess.cookie("", -1))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
	return nil
}

// safeNext keeps a redirect target inside the dashboard.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	return next
}
