package dashboard

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// chart is one SVG line chart of a value over the window.
type chart struct {
	Title string
	Unit  string
	Value func(Point) float64
}

var charts = []chart{
	{Title: "requests/s", Value: func(p Point) float64 { return p.RPS }},
	{Title: "errors/s (5xx)", Value: func(p Point) float64 { return p.ErrorsPS }},
	{Title: "p50 latency", Unit: "ms", Value: func(p Point) float64 { return p.P50 * 1000 }},
	{Title: "p99 latency", Unit: "ms", Value: func(p Point) float64 { return p.P99 * 1000 }},
	{Title: "instances", Value: func(p Point) float64 { return float64(p.Instances) }},
}

const (
	chartW, chartH = 320, 90
	chartPad       = 14
)

// renderChart draws points over [now-window, now] as an SVG line. Every
// value written is a number or escaped text; there are no style attributes
// (CSS classes style it, as the Content-Security-Policy wants).
func renderChart(c chart, pts []Point, now time.Time, window time.Duration) template.HTML {
	maxV := 0.0
	for _, p := range pts {
		if v := c.Value(p); v > maxV {
			maxV = v
		}
	}
	top := niceCeil(maxV)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`,
		chartW, chartH, chartW, chartH, template.HTMLEscapeString(c.Title+" over the last "+window.String()))
	fmt.Fprintf(&b, `<rect class="chart-bg" x="0" y="0" width="%d" height="%d"/>`, chartW, chartH)
	fmt.Fprintf(&b, `<text class="chart-title" x="4" y="11">%s</text>`, template.HTMLEscapeString(c.Title))
	fmt.Fprintf(&b, `<text class="chart-max" x="%d" y="11" text-anchor="end">max %s</text>`, chartW-4,
		template.HTMLEscapeString(formatNum(top, c.Unit)))
	if len(pts) > 0 {
		var path strings.Builder
		start := now.Add(-window)
		var x, y float64
		for i, p := range pts {
			x = float64(chartW) * p.Time.Sub(start).Seconds() / window.Seconds()
			if x < 0 {
				x = 0
			}
			y = float64(chartH) - 2 - (float64(chartH-chartPad-4))*c.Value(p)/top
			cmd := "L"
			if i == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&path, "%s%.1f %.1f ", cmd, x, y)
		}
		fmt.Fprintf(&b, `<path class="chart-line" d="%s"/>`, strings.TrimSpace(path.String()))
		fmt.Fprintf(&b, `<circle class="chart-dot" cx="%.1f" cy="%.1f" r="2"/>`, x, y)
		last := pts[len(pts)-1]
		fmt.Fprintf(&b, `<text class="chart-now" x="4" y="%d">now %s</text>`, chartH-4,
			template.HTMLEscapeString(formatNum(c.Value(last), c.Unit)))
	} else {
		fmt.Fprintf(&b, `<text class="chart-empty" x="%d" y="%d" text-anchor="middle">no data yet</text>`, chartW/2, chartH/2+4)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // G203: built above from numbers and escaped text
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := 1.0
	for p*10 <= v {
		p *= 10
	}
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func formatNum(v float64, unit string) string {
	var s string
	switch {
	case v == 0:
		s = "0"
	case v < 10:
		s = fmt.Sprintf("%.2f", v)
	case v < 100:
		s = fmt.Sprintf("%.1f", v)
	default:
		s = fmt.Sprintf("%.0f", v)
	}
	if unit != "" {
		s += " " + unit
	}
	return s
}
