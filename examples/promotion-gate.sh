#!/usr/bin/env bash
# Promotion gate for Fly.io: build and push a deployment-* image without rolling it
# out, refuse it when it brings NEW findings compared with what runs now, then roll it
# out. Findings already running are reported but do not block the release (fix them
# separately; `layerleak fly` and the code-scanning upload keep them visible).
#
#   FLY_APP=my-app FLY_API_TOKEN=... ./promotion-gate.sh
#
# Exit status: that of `layerleak diff` when it refuses (1 new findings, 3 incomplete
# scan), else that of `flyctl deploy`.
set -euo pipefail

: "${FLY_APP:?set FLY_APP}"
: "${FLY_API_TOKEN:?set FLY_API_TOKEN}"
label="deployment-$(date -u +%Y%m%dT%H%M%SZ)-${GITHUB_SHA:-local}"
label="${label:0:128}"
candidate="registry.fly.io/${FLY_APP}:${label}"

# 1. Build and push, do not deploy.
flyctl deploy --app "$FLY_APP" --build-only --push --image-label "$label" --remote-only

# 2. What runs now: the image of the app's Machines (the first, if several).
layerleak fly "$FLY_APP" --format json --output running.json --exit-zero --quiet || true
current="$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); i=d["fly"]["images"]; print(i[0]["ref"] if i else "")' running.json 2>/dev/null || true)"

# 3. The gate: only what is new in the candidate can fail it.
if [ -n "$current" ]; then
  layerleak diff "$current" "$candidate" \
    --fail-on high \
    --format markdown \
    --output layerleak-diff.md
else
  echo "no running image found: gating on every finding of the candidate" >&2
  layerleak scan "$candidate" --fail-on high --format markdown --output layerleak-diff.md
fi

# 4. Roll out the image that was scanned.
flyctl deploy --app "$FLY_APP" --image "$candidate"
