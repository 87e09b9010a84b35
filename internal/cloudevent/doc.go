// Package cloudevent reads and writes CloudEvents 1.0 over HTTP: the
// structured content mode (one JSON object, Content-Type
// application/cloudevents+json), the batched one, and the binary mode (the
// attributes as ce-* headers, the data as the body). Wisp's event ingress
// (POST /v1/events) reads events with FromHTTP, stores them as StructuredJSON
// and delivers them to functions in binary mode with ToHTTP; triggers pick
// events with Filters.
//
// The package is pure: it does no I/O, and every error it returns is a
// *core.Error of kind core.ErrInvalid whose Field is the attribute at fault.
//
// Specifications: CloudEvents 1.0.2 (spec.md), its JSON event format
// (formats/json-format.md) and its HTTP protocol binding
// (bindings/http-protocol-binding.md).
package cloudevent
