package main

// The storage comparison behind docs/logs.md: appending log entries to
// segment files (package logs, as the daemon does) against inserting them
// into SQLite (the best case: WAL, synchronous=NORMAL, one prepared insert,
// one transaction per 1,000 entries, as a writer that flushes every 100 ms
// at 10,000 lines/s would). The entries come from 20 instances of 4
// services, 120-byte lines. Run: go test -run '^$' -bench Append ./bench/logs
//
// ns/op is the cost of one entry; at 10,000 lines/s the writer's share of a
// core is ns/op × 10,000 / 1e9.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver

	"github.com/wisp-run/wisp/internal/core"
	"github.com/wisp-run/wisp/internal/logs"
)

func benchEntry(i int) core.LogEntry {
	inst := i % 20
	return core.LogEntry{Time: time.Now(), Kind: core.LogApp, Service: fmt.Sprintf("svc%d", inst%4), Version: 1,
		Instance: fmt.Sprintf("svc%d-v1-%08x", inst%4, inst), Stream: "stdout",
		Message: fmt.Sprintf("%08d GET /api/items/42 200 1.3ms %s", i, strings.Repeat("x", 80))}
}

func BenchmarkAppendSegments(b *testing.B) {
	l, err := logs.Open(logs.Config{Dir: b.TempDir(), QueueSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		l.Append(benchEntry(i))
		if i%1000 == 999 { // keep within the queue: wait for the writer now and then (a query of an empty service: a flush, no read)
			if err := l.Query(ctx, core.LogQuery{Service: "sync"}, func(core.LogEntry) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := l.Query(ctx, core.LogQuery{Service: "sync"}, func(core.LogEntry) error { return nil }); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func BenchmarkAppendSQLite(b *testing.B) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(b.TempDir(), "logs.db")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE logs (service TEXT NOT NULL, seq INTEGER NOT NULL, time INTEGER NOT NULL,
		kind TEXT NOT NULL, version INTEGER, instance TEXT, stream TEXT, event TEXT, message TEXT NOT NULL, fields TEXT,
		PRIMARY KEY (service, seq)) WITHOUT ROWID`); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec(`CREATE INDEX logs_time ON logs (service, time)`); err != nil {
		b.Fatal(err)
	}
	seqs := map[string]int64{}
	b.ReportAllocs()
	b.ResetTimer()
	var tx *sql.Tx
	var stmt *sql.Stmt
	for i := range b.N {
		if i%1000 == 0 {
			if tx != nil {
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			if tx, err = db.Begin(); err != nil {
				b.Fatal(err)
			}
			if stmt, err = tx.Prepare(`INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`); err != nil {
				b.Fatal(err)
			}
		}
		e := benchEntry(i)
		seqs[e.Service]++
		var fields []byte
		if e.Fields != nil {
			fields, _ = json.Marshal(e.Fields)
		}
		if _, err := stmt.Exec(e.Service, seqs[e.Service], e.Time.UnixNano(), string(e.Kind), e.Version, e.Instance, e.Stream, e.Event, e.Message, fields); err != nil {
			b.Fatal(err)
		}
	}
	if tx != nil {
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}
