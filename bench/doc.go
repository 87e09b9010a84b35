// Package bench holds Wisp's benchmarks: programs that measure Wisp against a
// baseline in the same run and print ratios (make bench-…). They may import
// any package, adapters and SDKs included, because they measure the parts
// against each other. Results are recorded in docs/benchmarks.md.
package bench
