//go:build tools

// Package tools pins the Python language host's main package, so `go mod tidy` keeps its
// dependencies. v3.68.0 is the last sdk/v3 release that carried the host inside sdk/v3; the
// later, separate module (sdk/python/cmd/pulumi-language-python/v3) is not on the module proxy.
package tools

import _ "github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python"
