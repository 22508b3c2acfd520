// pulumi-resource-docker is the resource plugin the Pulumi engine launches.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"

	docker "persistence.invalid/e2e/provider-docker"
)

// Produced by pulumi-tfgen-docker at build time (git-ignored, see
// build-providers.sh); go:embed needs them inside the module directory.
var (
	//go:embed generated/schema.json
	schema []byte
	//go:embed generated/bridge-metadata.json
	metadata []byte
)

// version is stamped by build-providers.sh (-ldflags -X main.version=...);
// the engine compares it with the version the SDK asks for.
var version = "0.0.0-dev"

func main() {
	tfbridge.Main("docker", version, docker.Provider(version, metadata), schema)
}
