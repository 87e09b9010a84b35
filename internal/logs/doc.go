// Package logs keeps every service's log stream: the lines its instances
// print (captured through the runtime's Logs), the platform events Wisp
// emits and the request lines the router writes. They outlive the instance
// that printed them and the daemon (docs/logs.md).
//
// Storage is append-only segment files, one directory per service,
// `<dir>/<service>/<first seq>.seg`, each a run of newline-delimited JSON
// core.LogEntry values; the choice was measured against SQLite
// (bench/logs, docs/benchmarks.md). One writer goroutine (Run) owns the
// files: Append only queues (it never blocks, and drops and counts when the
// queue is full), the writer assigns each entry its service's next Seq,
// buffers, flushes every FlushInterval, rolls segments and enforces the
// retention per service (bytes and age, oldest segment first).
//
// The parts:
//   - logs.go: Config, Open (recovery of seqs and torn lines), Append, Run,
//     the writer, retention;
//   - segment.go: reading segment files;
//   - query.go: Query (filters, tail read newest segment first, follow);
//   - capture.go: copying an instance's output into the stream from the
//     moment an EventInstanceStarting or EventInstanceAdopted entry passes;
//   - metrics.go: the Prometheus counters.
package logs
