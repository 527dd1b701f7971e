package web_test

import (
	"context"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/evchat/evchat/web"
)

// TestDocumentValid checks the document is valid OpenAPI and that the JSON
// form says the same as the YAML one.
func TestDocumentValid(t *testing.T) {
	j, err := web.OpenAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"yaml": web.OpenAPIYAML, "json": j} {
		doc, err := openapi3.NewLoader().LoadFromData(b)
		if err != nil {
			t.Fatalf("%s: load: %v", name, err)
		}
		if err := doc.Validate(context.Background()); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
