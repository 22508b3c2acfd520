// Package shim exposes the upstream random provider, whose code sits in an
// internal package, to our bridge wrapper.
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"

	upstream "github.com/terraform-providers/terraform-provider-random/internal/provider"
)

// NewProvider returns the upstream Terraform Plugin Framework provider.
func NewProvider() provider.Provider {
	return upstream.New()
}
