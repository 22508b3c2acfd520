#!/usr/bin/env bash
# Placeholder until the provider plugins land: fails, so no stamp claims an engine without them.
echo "engine: provider plugins not built yet" >&2
exit 1
