package api

import (
	"reflect"
	"testing"

	"github.com/wisp-run/wisp/internal/core"
)

func TestJSONPath(t *testing.T) {
	var in struct {
		core.BuildRequest
		Version versionRequest `json:"version"`
	}
	for path, want := range map[string]string{
		"VersionSpec.port":         "port",
		"version.VersionSpec.port": "version.port",
		"version.env":              "version.env",
		"service":                  "service",
	} {
		typ := reflect.TypeOf(&in)
		if path == "VersionSpec.port" {
			typ = reflect.TypeOf(&versionRequest{})
		}
		if got := jsonPath(typ, path); got != want {
			t.Errorf("jsonPath(%q) = %q, want %q", path, got, want)
		}
	}
}
