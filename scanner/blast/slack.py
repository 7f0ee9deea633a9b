"""Slack tokens and webhooks: the workspace, app or team they belong to, where the
token text carries it.

* ``xoxb-`` bot and ``xoxp-`` user tokens: numeric segments; the first is the same
  for every token of one workspace (reported as ``workspace_segment``).
* ``xapp-1-A…-`` app-level tokens: the app id (``A…``).
* ``https://hooks.slack.com/services/T…/B…/…`` webhooks: the team id (``T…``) and the
  webhook's id (``B…``); the last path segment is the secret and is never reported.
"""

from __future__ import annotations

import re

from scanner.blast.interface import Clue, Decoder, Radius

BOT_OR_USER = re.compile(r"^xox([bp])-([0-9]{1,20})-([0-9]{1,20})-")
APP = re.compile(r"^xapp-[0-9]+-(A[A-Z0-9]{4,20})-")
WEBHOOK = re.compile(
    r"hooks\.slack\.com/(?:services|workflows)/(T[A-Z0-9]{4,20})/([AB][A-Z0-9]{4,20})/"
)
KINDS = {
    "b": "bot token: what the app's bot scopes allow in the workspace",
    "p": "user token: acts as the user who installed the app, with that user's access",
}


class SlackDecoder(Decoder):
    name = "slack"
    detectors = frozenset({"Slack", "SlackWebhook"})

    def decode(self, clue: Clue) -> Radius | None:
        secret = clue.secret.strip()
        m = BOT_OR_USER.match(secret)
        if m:
            details = {"provider": "Slack", "token_kind": f"xox{m.group(1)}"}
            details["workspace_segment"] = m.group(2)
            return Radius(f"Slack {KINDS[m.group(1)]} (workspace {m.group(2)})", details)
        m = APP.match(secret)
        if m:
            details = {"provider": "Slack", "token_kind": "xapp", "app_id": m.group(1)}
            return Radius(
                f"Slack app-level token of app {m.group(1)}: connects to the app's events "
                "(Socket Mode) in every workspace it is installed in",
                details,
            )
        m = WEBHOOK.search(secret) or WEBHOOK.search(clue.context)
        if m:
            details = {"provider": "Slack", "team_id": m.group(1), "webhook_id": m.group(2)}
            return Radius(
                f"Slack incoming webhook of team {m.group(1)}: posts messages to one channel",
                details,
            )
        return None
