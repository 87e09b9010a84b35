package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/wisp-run/wisp/internal/apiclient"
	"github.com/wisp-run/wisp/internal/core"
)

type platformData struct {
	Info      core.ServerInfo
	Services  int
	Versions  int
	Instances string
	RPS       string
	Builds    string
}

func (d *Dashboard) platformPage(w http.ResponseWriter, r *http.Request, a auth) error {
	ctx := r.Context()
	info, err := d.api.Info(ctx)
	if err != nil {
		return err
	}
	svcs, err := d.api.ListServices(ctx)
	if err != nil {
		return err
	}
	p := &platformData{Info: info, Services: len(svcs), RPS: "—"}
	rps, seen := 0.0, false
	for _, s := range svcs {
		vs, err := d.api.ListVersions(ctx, s.Name)
		if err == nil {
			p.Versions += len(vs)
		}
		if d.cfg.Sampler != nil {
			if pt, ok := d.cfg.Sampler.Latest(s.Name); ok {
				rps, seen = rps+pt.RPS, true
			}
		}
	}
	if seen {
		p.RPS = formatNum(rps, "")
	}
	insts, err := d.api.Instances(ctx, "")
	if err != nil {
		return err
	}
	states := map[string]int{}
	for _, in := range insts {
		states[in.State]++
	}
	p.Instances = fmt.Sprintf("%d (%s)", len(insts), statesString(states))
	if bs, err := d.api.ListBuilds(ctx, "", 1000); err == nil {
		p.Builds = strconv.Itoa(len(bs))
	} else {
		var ae *apiclient.Error
		if errors.As(err, &ae) {
			p.Builds = "off (" + ae.Message + ")"
		}
	}
	d.render(w, r, http.StatusOK, "platform", pageData{Title: "Platform", Nav: "platform", CSRF: d.csrfOf(a), Data: p})
	return nil
}
