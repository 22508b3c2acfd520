// The shim lives "inside" the upstream module's import path so that Go's
// internal-package rule lets it import .../internal/provider. The parent
// go.mod points both paths at real code with replace directives.
module github.com/terraform-providers/terraform-provider-docker/shim

go 1.25.8

require github.com/terraform-providers/terraform-provider-docker v0.0.0
