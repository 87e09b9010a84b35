package api

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the OpenAPI 3 description of every route; a test keeps it and
// the registered routes in step.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI document.
func OpenAPI() []byte { return openAPIDoc }

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(openAPIDoc)
	return err
}
