// pulumi-tfgen-docker writes schema.json and bridge-metadata.json, which
// pulumi-resource-docker embeds. Run: pulumi-tfgen-docker schema --out DIR
package main

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"

	docker "persistence.invalid/e2e/provider-docker"
)

// version is stamped by build-providers.sh (-ldflags -X main.version=...).
var version = "0.0.0-dev"

func main() {
	tfgen.Main("docker", version, docker.Provider(version, nil))
}
