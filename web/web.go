// Package web holds the API reference: the OpenAPI document and the Swagger
// UI page that renders it, both embedded in the binary so that they work
// offline.
package web

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"sync"

	"gopkg.in/yaml.v3"
)

// OpenAPIYAML is the OpenAPI 3.1 document of the API, as written.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte

//go:embed docs
var docs embed.FS

// Docs is the reference page and its assets (Swagger UI, vendored from the
// swagger-ui-dist package with its licence), rooted at the page.
func Docs() fs.FS {
	sub, err := fs.Sub(docs, "docs")
	if err != nil {
		panic(err) // the directory is embedded above
	}
	return sub
}

var openAPIJSON = sync.OnceValues(func() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(OpenAPIYAML, &doc); err != nil {
		return nil, fmt.Errorf("parse openapi.yaml: %w", err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("convert openapi.yaml to JSON: %w", err)
	}
	return b, nil
})

// OpenAPIJSON is the document as JSON (converted once, on first use).
func OpenAPIJSON() ([]byte, error) { return openAPIJSON() }
