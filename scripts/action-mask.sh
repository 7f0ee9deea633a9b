#!/usr/bin/env bash
# action.yml, step 1: register the secret inputs (INPUT_REGISTRY_PASSWORD,
# INPUT_FLY_API_TOKEN) with the runner's log masker before any other step runs, so a
# value that did not come from `secrets.*` (a token minted by an earlier step, say) is
# shown as *** from here on. A multi-line value is masked whole and line by line.
# Workflow-command data is escaped (% CR LF) as the runner expects.
set -euo pipefail

escape() {
    local value=$1
    value=${value//'%'/'%25'}
    value=${value//$'\r'/'%0D'}
    value=${value//$'\n'/'%0A'}
    printf '%s' "$value"
}

mask() {
    local value=$1 line
    [[ -n ${value//[[:space:]]/} ]] || return 0
    printf '::add-mask::%s\n' "$(escape "$value")"
    if [[ $value == *$'\n'* ]]; then
        while IFS= read -r line || [[ -n $line ]]; do
            line=${line%$'\r'}
            [[ -n ${line//[[:space:]]/} ]] && printf '::add-mask::%s\n' "$(escape "$line")"
        done <<<"$value"
    fi
    return 0
}

mask "${INPUT_REGISTRY_PASSWORD-}"
mask "${INPUT_FLY_API_TOKEN-}"
