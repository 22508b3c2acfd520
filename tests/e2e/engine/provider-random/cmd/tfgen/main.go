// pulumi-tfgen-random writes schema.json and bridge-metadata.json, which
// pulumi-resource-random embeds. Run: pulumi-tfgen-random schema --out DIR
package main

import (
	pftfgen "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"

	random "persistence.invalid/e2e/provider-random"
)

// version is stamped by build-providers.sh (-ldflags -X main.version=...).
var version = "0.0.0-dev"

func main() {
	pftfgen.Main("random", random.Provider(version, nil))
}
