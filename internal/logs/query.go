package logs

import (
	"context"

	"github.com/wisp-run/wisp/internal/core"
)

// segRef is a segment as a reader sees it.
type segRef struct {
	first uint64
	path  string
	size  int64
}

// snapshot returns service's segments, oldest first, and the channel the
// next flush closes.
func (l *Logs) snapshot(svc string) ([]segRef, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.services[svc]
	if s == nil {
		return nil, l.notify
	}
	out := make([]segRef, len(s.segs))
	for i, seg := range s.segs {
		out[i] = segRef{first: seg.first, path: seg.path, size: seg.size}
	}
	return out, l.notify
}

// cursor is where a reader is: the segment (by first seq) and the byte
// offset in it after the last whole line read.
type cursor struct {
	first uint64
	off   int64
}

// Query calls fn with the entries of q.Service that q matches, in Seq
// order, including those appended before the call that the writer had
// not written yet. With q.Tail, only the last Tail of them (read from the
// newest segment backwards). With q.Follow, it then waits for new entries
// and calls fn with each until ctx ends (and then returns nil), the
// store closes or EndFollows. An error from fn ends the query and is returned.
func (l *Logs) Query(ctx context.Context, q core.LogQuery, fn func(core.LogEntry) error) error {
	if err := l.sync(ctx); err != nil {
		return err
	}
	segs, notify := l.snapshot(q.Service)
	var cur cursor
	var err error
	if q.Tail > 0 {
		cur, err = l.readTail(segs, q, fn)
	} else {
		cur, err = l.readForward(segs, cursor{}, q, fn)
	}
	if err != nil || !q.Follow {
		return err
	}
	for {
		select {
		case <-notify:
		case <-ctx.Done():
			return nil
		case <-l.done:
			return nil
		case <-l.endc:
			return nil
		case <-l.closedc:
			return nil
		}
		segs, notify = l.snapshot(q.Service)
		if cur, err = l.readForward(segs, cur, q, fn); err != nil {
			return err
		}
	}
}

// readForward reads segs from cur on.
func (l *Logs) readForward(segs []segRef, cur cursor, q core.LogQuery, fn func(core.LogEntry) error) (cursor, error) {
	for i, seg := range segs {
		if seg.first < cur.first {
			continue
		}
		off := int64(0)
		if seg.first == cur.first {
			off = cur.off
		}
		// A segment whose entries all precede AfterSeq is skipped unread.
		if i+1 < len(segs) && segs[i+1].first-1 <= q.AfterSeq {
			cur = cursor{first: seg.first, off: seg.size}
			continue
		}
		end, err := scanSegment(seg.path, off, func(e core.LogEntry) error {
			if q.Matches(e) {
				return fn(e)
			}
			return nil
		})
		cur = cursor{first: seg.first, off: end}
		if err != nil {
			return cur, err
		}
	}
	return cur, nil
}

// readTail reads segments newest first, each from its end, until it has
// q.Tail matches, then calls fn with them in order. The cursor is the end
// of the newest segment.
func (l *Logs) readTail(segs []segRef, q core.LogQuery, fn func(core.LogEntry) error) (cursor, error) {
	var cur cursor
	var got []core.LogEntry // newest first
	for i := len(segs) - 1; i >= 0 && len(got) < q.Tail; i-- {
		if i+1 < len(segs) && segs[i+1].first-1 <= q.AfterSeq {
			break
		}
		end, err := scanBackward(segs[i].path, func(e core.LogEntry) bool {
			if e.Seq <= q.AfterSeq {
				return true
			}
			if q.Matches(e) {
				got = append(got, e)
			}
			return len(got) >= q.Tail
		})
		if err != nil {
			return cur, err
		}
		if i == len(segs)-1 {
			cur = cursor{first: segs[i].first, off: end}
		}
	}
	for i := len(got) - 1; i >= 0; i-- {
		if err := fn(got[i]); err != nil {
			return cur, err
		}
	}
	return cur, nil
}
