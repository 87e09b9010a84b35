package core

import (
	"fmt"
	"sort"
	"strings"
)

// StandbyCost says, in one line, what a policy's standbys cost for the
// versions given (those a request can reach: Traffic.Routable). A paused
// instance keeps its resident memory and uses no CPU; what Wisp knows of that
// memory ahead is the version's memory limit, its upper bound, so the line
// gives the limit, or says there is none. noPause is true where the runtime
// cannot pause (Kubernetes), where standbys are ignored.
func StandbyCost(standby int, routable []Version, noPause bool) string {
	if standby == 0 {
		return "none (a version with no traffic for idle_timeout scales to zero)"
	}
	head := fmt.Sprintf("%d paused instance(s) per version with traffic: memory, not CPU", standby)
	if noPause {
		return head + "; no effect: the runtime cannot pause instances"
	}
	if len(routable) == 0 {
		return head + "; no version has traffic yet"
	}
	sort.Slice(routable, func(i, j int) bool { return routable[i].Number < routable[j].Number })
	var parts []string
	var total ByteSize
	unbounded := false
	for _, v := range routable {
		if v.MemoryLimit == 0 {
			unbounded = true
			parts = append(parts, fmt.Sprintf("v%d: no memory limit, each keeps what it holds resident", v.Number))
			continue
		}
		cost := ByteSize(int64(v.MemoryLimit) * int64(standby))
		total += cost
		parts = append(parts, fmt.Sprintf("v%d: up to %d × %s (its memory limit) = %s", v.Number, standby, v.MemoryLimit, cost))
	}
	line := head + "; " + strings.Join(parts, "; ")
	if len(routable) > 1 && !unbounded {
		line += fmt.Sprintf("; in all up to %s", total)
	}
	return line
}
