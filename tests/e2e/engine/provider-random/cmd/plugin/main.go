// pulumi-resource-random is the resource plugin the Pulumi engine launches.
package main

import (
	"context"
	_ "embed"

	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"

	random "persistence.invalid/e2e/provider-random"
)

// Produced by pulumi-tfgen-random at build time (git-ignored, see
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
	pf.Main(context.Background(), "random", random.Provider(version, metadata),
		pf.ProviderMetadata{PackageSchema: schema})
}
