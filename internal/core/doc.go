// Package core holds Wisp's domain types and their rules: services, immutable
// versions, traffic splits and the error kinds every layer speaks. It does no
// I/O and imports only the standard library, so every other package can use it.
package core
