// Package archtest holds tests that keep Wisp's architecture from drifting:
// the direction of imports between packages (see docs/architecture.md, "Layout and
// the direction of imports") and the rule that every package is documented.
// It has no code of its own.
package archtest
