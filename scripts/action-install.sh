#!/usr/bin/env bash
# action.yml, step 2: a private virtual environment under $RUNNER_TEMP with layerleak
# installed from the action's own checkout ($GITHUB_ACTION_PATH: the ref the workflow
# pinned), so the scan runs exactly the code of that ref. A second use of the action in
# the same job (same checkout) reuses the environment. Sets the step output `python`.
set -euo pipefail
: "${GITHUB_ACTION_PATH:?}" "${RUNNER_TEMP:?}" "${GITHUB_OUTPUT:?}"

venv="$RUNNER_TEMP/layerleak-action/venv"
stamp="$venv/.installed-from"

if [[ ! -x $venv/bin/layerleak || ! -f $stamp || "$(<"$stamp")" != "$GITHUB_ACTION_PATH" ]]; then
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "::error title=layerleak::layerleak needs Python 3.11 or newer as python3; add actions/setup-python before this action"
        exit 1
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$GITHUB_ACTION_PATH"
    printf '%s' "$GITHUB_ACTION_PATH" >"$stamp"
fi

"$venv/bin/layerleak" --version
echo "python=$venv/bin/python" >>"$GITHUB_OUTPUT"
