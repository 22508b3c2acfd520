// Package shim exposes the SDKv2 half of kreuzwerker/terraform-provider-docker,
// whose code sits in an internal package, to our bridge wrapper. Everything
// the program uses (container, image, network, volume) is SDKv2; the
// provider's Plugin Framework half (docker_compose, actions, two data sources)
// is left out, so no mux is needed.
package shim

import (
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"

	upstream "github.com/terraform-providers/terraform-provider-docker/internal/provider"
)

// NewProvider returns the upstream SDKv2 provider; version ends up in the
// User-Agent the provider sends to the Docker daemon.
func NewProvider(version string) *schema.Provider {
	return upstream.New(version)()
}
