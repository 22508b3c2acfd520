// Package random bridges hashicorp/terraform-provider-random (a Terraform
// Plugin Framework provider) into a Pulumi resource plugin that speaks the
// same tokens and property names as the pulumi-random PyPI SDK.
package random

import (
	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	"github.com/terraform-providers/terraform-provider-random/shim"
)

// Provider describes the mapping. version is what the plugin reports to the
// engine (it must equal the SDK's pulumi-plugin.json version); metadata is
// bridge-metadata.json written by tfgen (nil while tfgen itself runs).
func Provider(version string, metadata []byte) tfbridge.ProviderInfo {
	prov := tfbridge.ProviderInfo{
		P:            pf.ShimProvider(shim.NewProvider()),
		Name:         "random",
		Version:      version,
		Description:  "Random values for Pulumi programs (local end-to-end test build).",
		License:      "Apache-2.0",
		MetadataInfo: tfbridge.NewProviderMetadata(metadata),
	}
	// random_password -> random:index/randomPassword:RandomPassword, the token
	// scheme the published SDK uses for every resource.
	prov.MustComputeTokens(tokens.SingleModule("random_", "index",
		func(module, name string) (string, error) {
			return tokens.MakeStandard("random")(module, "Random"+name)
		}))
	return prov
}
