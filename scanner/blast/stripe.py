"""Stripe keys: live or test mode, full or restricted, by their documented prefixes."""

from __future__ import annotations

from scanner.blast.interface import Clue, Decoder, Radius
from scanner.findings import Severity

# prefix -> (mode, kind, what it opens, severity)
PREFIXES: tuple[tuple[str, str, str, str, Severity | None], ...] = (
    (
        "sk_live_",
        "live",
        "secret",
        "every API call on the live account: charges, refunds, payouts, customer data",
        Severity.CRITICAL,
    ),
    (
        "rk_live_",
        "live",
        "restricted",
        "the live account, limited to the permissions chosen when the key was made "
        "(not readable offline)",
        Severity.HIGH,
    ),
    ("sk_test_", "test", "secret", "test-mode data only: no real money moves", Severity.LOW),
    ("rk_test_", "test", "restricted", "test-mode data only, restricted", Severity.LOW),
    (
        "whsec_",
        "n/a",
        "webhook signing secret",
        "forging webhook events that the endpoint accepts as Stripe's",
        None,
    ),
)


class StripeDecoder(Decoder):
    name = "stripe"
    detectors = frozenset({"Stripe"})

    def decode(self, clue: Clue) -> Radius | None:
        secret = clue.secret.strip()
        for prefix, mode, kind, opens, severity in PREFIXES:
            if secret.startswith(prefix):
                details = {"provider": "Stripe", "mode": mode, "key_kind": kind}
                label = f"{mode}-mode {kind} key" if mode != "n/a" else kind
                return Radius(f"Stripe {label}: {opens}", details, severity=severity)
        return None
