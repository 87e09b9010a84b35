package dashboard

import (
	"net/http"
	"net/url"

	"github.com/wisp-run/wisp/internal/core"
)

// eventsPageData is the Events page: triggers and schedules. Each part
// says on its own when it is off or could not be read, so one does not
// hide the other.
type eventsPageData struct {
	TriggersOff, TriggersErr   string
	Triggers                   []core.Trigger
	SchedulesOff, SchedulesErr string
	Schedules                  []scheduleRow
}

type scheduleRow struct {
	core.Schedule
	// LastState is the state of its newest run ("" when it has none).
	LastState string
}

func (d *Dashboard) eventsPage(w http.ResponseWriter, r *http.Request, a auth) error {
	ctx := r.Context()
	p := &eventsPageData{}
	var err error
	if p.Triggers, err = d.api.ListTriggers(ctx); err != nil {
		p.TriggersOff, p.TriggersErr = offOrError(err)
	}
	scheds, err := d.api.ListSchedules(ctx)
	if err != nil {
		p.SchedulesOff, p.SchedulesErr = offOrError(err)
	}
	for _, s := range scheds {
		row := scheduleRow{Schedule: s}
		// The list has no runs: one read per schedule for its last one.
		// Schedules are few (they are written by hand).
		if full, err := d.api.GetSchedule(ctx, s.Name); err == nil && len(full.Runs) > 0 {
			row.LastState = full.Runs[0].State
		}
		p.Schedules = append(p.Schedules, row)
	}
	d.render(w, r, http.StatusOK, "async", pageData{Title: "Events", Nav: "async", CSRF: d.csrfOf(a), Bearer: a.bearer, Data: p})
	return nil
}

// offOrError sorts err into the "async calls are off" message or the
// API's own message.
func offOrError(err error) (off, msg string) {
	if asyncOff(err) {
		return asyncOffMessage, ""
	}
	_, msg = errorStatus(err)
	return "", msg
}

type triggerPageData struct {
	Trigger core.Trigger
}

func (d *Dashboard) triggerPage(w http.ResponseWriter, r *http.Request, a auth) error {
	t, err := d.api.GetTrigger(r.Context(), r.PathValue("name"))
	if err != nil {
		return asyncPageError(err)
	}
	d.render(w, r, http.StatusOK, "trigger", pageData{Title: "Trigger " + t.Name, Nav: "async", CSRF: d.csrfOf(a), Bearer: a.bearer,
		Data: &triggerPageData{Trigger: t}})
	return nil
}

type schedulePageData struct {
	Schedule core.Schedule
}

func (d *Dashboard) schedulePage(w http.ResponseWriter, r *http.Request, a auth) error {
	return d.renderSchedule(w, r, a, http.StatusOK, "", doneMessage(r.URL.Query()))
}

func (d *Dashboard) renderSchedule(w http.ResponseWriter, r *http.Request, a auth, status int, errMsg, flash string) error {
	s, err := d.api.GetSchedule(r.Context(), r.PathValue("name"))
	if err != nil {
		return asyncPageError(err)
	}
	d.render(w, r, status, "schedule", pageData{Title: "Schedule " + s.Name, Nav: "async", CSRF: d.csrfOf(a), Bearer: a.bearer,
		Data: &schedulePageData{Schedule: s}, Error: errMsg, Flash: flash})
	return nil
}

// suspendSchedule suspends (or resumes) a schedule and goes back to its
// page.
func (d *Dashboard) suspendSchedule(suspend bool) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, a auth) error {
		name := r.PathValue("name")
		if _, err := d.api.UpdateSchedule(r.Context(), name, core.SchedulePatch{Suspend: &suspend}); err != nil {
			return d.scheduleChangeFailed(w, r, a, err)
		}
		done := "resume"
		if suspend {
			done = "suspend"
		}
		http.Redirect(w, r, "/ui/schedules/"+url.PathEscape(name)+"?done="+done, http.StatusSeeOther)
		return nil
	}
}

// runSchedule fires a schedule now, outside its cron.
func (d *Dashboard) runSchedule(w http.ResponseWriter, r *http.Request, a auth) error {
	name := r.PathValue("name")
	id, err := d.api.RunSchedule(r.Context(), name)
	if err != nil {
		return d.scheduleChangeFailed(w, r, a, err)
	}
	http.Redirect(w, r, "/ui/schedules/"+url.PathEscape(name)+"?"+url.Values{"done": {"run"}, "call": {id}}.Encode(), http.StatusSeeOther)
	return nil
}

// scheduleChangeFailed shows the schedule's page with the API's message,
// or an error page when the schedule cannot be read either.
func (d *Dashboard) scheduleChangeFailed(w http.ResponseWriter, r *http.Request, a auth, err error) error {
	status, msg := errorStatus(asyncPageError(err))
	if rerr := d.renderSchedule(w, r, a, status, msg, ""); rerr != nil {
		return asyncPageError(err)
	}
	return nil
}
