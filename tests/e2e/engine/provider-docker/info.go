// Package docker bridges kreuzwerker/terraform-provider-docker into a Pulumi
// resource plugin that speaks the same tokens and property names as the
// pulumi-docker PyPI SDK (for the TF resources; the SDK's native docker.Image
// and buildx resources are Go code of pulumi-docker and are not provided).
package docker

import (
	"unicode"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/terraform-providers/terraform-provider-docker/shim"
)

// resource makes "docker:index/remoteImage:RemoteImage" from "RemoteImage".
func resource(name string) tokens.Type {
	module := string(unicode.ToLower(rune(name[0]))) + name[1:]
	return tokens.Type("docker:index/" + module + ":" + name)
}

// dataSource makes "docker:index/getNetwork:getNetwork" from "getNetwork".
func dataSource(name string) tokens.ModuleMember {
	return tokens.ModuleMember("docker:index/" + name + ":" + name)
}

// Provider describes the mapping. version is what the plugin reports to the
// engine (it must equal the SDK's pulumi-plugin.json version); metadata is
// bridge-metadata.json written by tfgen (nil while tfgen itself runs).
func Provider(version string, metadata []byte) tfbridge.ProviderInfo {
	prov := tfbridge.ProviderInfo{
		P:            shimv2.NewProvider(shim.NewProvider(version)),
		Name:         "docker",
		Version:      version,
		Description:  "Docker for Pulumi programs (local end-to-end test build).",
		License:      "Apache-2.0",
		MetadataInfo: tfbridge.NewProviderMetadata(metadata),
		Config: map[string]*tfbridge.SchemaInfo{
			// Required upstream but defaulted there; optional in the SDK.
			"host": {Default: &tfbridge.DefaultInfo{
				Value:   "unix:///var/run/docker.sock",
				EnvVars: []string{"DOCKER_HOST"},
			}},
			"registry_auth": {Name: "registryAuth", MaxItemsOne: tfbridge.False()},
		},
		Resources: map[string]*tfbridge.ResourceInfo{
			"docker_container": {
				Tok: resource("Container"),
				// A fixed container name cannot exist twice: replace = delete, then create.
				DeleteBeforeReplace: true,
				Fields: map[string]*tfbridge.SchemaInfo{
					// The SDK keeps these two list names singular.
					"command":           {Name: "command"},
					"networks_advanced": {Name: "networksAdvanced"},
				},
			},
			// The SDK calls TF docker_image "RemoteImage" (its own "Image" is native code).
			"docker_image": {
				Tok:    resource("RemoteImage"),
				Fields: map[string]*tfbridge.SchemaInfo{"name": {Name: "name"}},
			},
			"docker_network":        {Tok: resource("Network")},
			"docker_volume":         {Tok: resource("Volume")},
			"docker_config":         {Tok: resource("ServiceConfig")},
			"docker_secret":         {Tok: resource("Secret")},
			"docker_service":        {Tok: resource("Service")},
			"docker_registry_image": {Tok: resource("RegistryImage")},
			"docker_plugin":         {Tok: resource("Plugin")},
			"docker_tag":            {Tok: resource("Tag")},
			"docker_buildx_builder": {Tok: resource("BuildxBuilder")},
		},
		DataSources: map[string]*tfbridge.DataSourceInfo{
			"docker_network":                  {Tok: dataSource("getNetwork")},
			"docker_registry_image":           {Tok: dataSource("getRegistryImage")},
			"docker_registry_image_manifests": {Tok: dataSource("getRegistryImageManifests")},
			"docker_plugin":                   {Tok: dataSource("getPlugin")},
			"docker_image":                    {Tok: dataSource("getRemoteImage")},
			"docker_logs":                     {Tok: dataSource("getLogs")},
		},
	}
	// Optional `name` inputs get Pulumi auto-names, as in the published provider.
	prov.SetAutonaming(255, "-")
	return prov
}
