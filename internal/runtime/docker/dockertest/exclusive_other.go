//go:build !unix

package dockertest

import "testing"

// Exclusive holds the engine for the rest of the test where file locks are
// available (unix); elsewhere tests share it.
func Exclusive(t testing.TB) { t.Helper() }
