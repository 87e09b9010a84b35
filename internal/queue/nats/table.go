package nats

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/queue"
)

// Table implements queue.Queue: a key-value bucket WISP_<name>.
func (q *Queue) Table(ctx context.Context, name string, ttl time.Duration) (queue.Table, error) {
	if err := checkToken(name); err != nil {
		return nil, err
	}
	q.tableMu.Lock()
	defer q.tableMu.Unlock()
	if t, ok := q.tables[name]; ok {
		return t, nil
	}
	bucket := "WISP_" + strings.ToUpper(name)
	kv, err := q.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:       "WISP_" + strings.ToUpper(name),
		History:      1,
		TTL:          ttl,
		Storage:      jetstream.FileStorage,
		MaxValueSize: MaxPayload,
	})
	if err != nil {
		return nil, unavailable("open the table "+name, err)
	}
	st, err := q.js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return nil, unavailable("open the table "+name, err)
	}
	t := table{kv: kv, st: st, prefix: "$KV." + bucket + "."}
	q.tables[name] = t
	return t, nil
}

// table is a key-value bucket; st is the stream under it, for Find.
type table struct {
	kv     jetstream.KeyValue
	st     jetstream.Stream
	prefix string
}

func (t table) Find(ctx context.Context, pattern string) (string, []byte, uint64, error) {
	m, err := t.st.GetLastMsgForSubject(ctx, t.prefix+pattern)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", nil, 0, core.NotFoundf("find: no record %q", pattern)
	}
	if err != nil {
		return "", nil, 0, unavailable("find "+pattern, err)
	}
	if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
		return "", nil, 0, core.NotFoundf("find: no record %q", pattern)
	}
	return strings.TrimPrefix(m.Subject, t.prefix), m.Data, m.Sequence, nil
}

func tableErr(what, key string, err error) error {
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return core.NotFoundf("%s: no record %q", what, key)
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return core.PreconditionFailedf("%s: record %q changed since it was read", what, key)
	case errors.Is(err, jetstream.ErrKeyExists):
		return core.AlreadyExistsf("%s: record %q exists", what, key)
	case errors.Is(err, jetstream.ErrInvalidKey):
		return core.Invalidf("key", "%s: key %q is not valid", what, key)
	}
	return unavailable(what+" "+key, err)
}

func (t table) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := t.kv.Get(ctx, key)
	if err != nil {
		return nil, 0, tableErr("read", key, err)
	}
	return e.Value(), e.Revision(), nil
}

func (t table) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := t.kv.Create(ctx, key, value)
	if err != nil {
		return 0, tableErr("create", key, err)
	}
	return rev, nil
}

func (t table) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	n, err := t.kv.Update(ctx, key, value, rev)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			err = jetstream.ErrKeyRevisionMismatch // the code non-replicated streams use
		}
		return 0, tableErr("update", key, err)
	}
	return n, nil
}

func (t table) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	n, err := t.kv.Put(ctx, key, value)
	if err != nil {
		return 0, tableErr("write", key, err)
	}
	return n, nil
}

func (t table) Delete(ctx context.Context, key string) error {
	err := t.kv.Delete(ctx, key)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return tableErr("delete", key, err)
	}
	return nil
}

func (t table) Keys(ctx context.Context, pattern string) ([]string, error) {
	l, err := t.kv.ListKeysFiltered(ctx, pattern)
	if err != nil {
		return nil, tableErr("list", pattern, err)
	}
	defer func() { _ = l.Stop() }()
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	return keys, nil
}
