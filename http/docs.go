package http

import (
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/web"
)

// docsRoutes serves the API reference: the OpenAPI document and the page
// that renders it. Every path reaches the routes with a trailing slash
// added (see routes), so the file names are taken without it.
func (s *Server) docsRoutes(e *echo.Echo) {
	e.GET("/openapi.yaml/", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", web.OpenAPIYAML)
	})
	e.GET("/openapi.json/", func(c echo.Context) error {
		b, err := web.OpenAPIJSON()
		if err != nil {
			return err
		}
		return c.JSONBlob(http.StatusOK, b)
	})
	assets := web.Docs()
	asset := func(c echo.Context) error {
		name := strings.Trim(c.Param("*"), "/")
		if name == "" {
			name = "index.html"
		}
		if !fs.ValidPath(name) || path.Ext(name) == "" {
			return echo.ErrNotFound
		}
		b, err := fs.ReadFile(assets, name)
		if err != nil {
			return echo.ErrNotFound
		}
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = echo.MIMEOctetStream
		}
		return c.Blob(http.StatusOK, ct, b)
	}
	e.GET("/docs/", asset)
	e.GET("/docs/*", asset)
}
