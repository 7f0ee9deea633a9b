"""Shared by the structured-file analyzers (fly.toml, compose files): bounded, safe
parsing of TOML and YAML from an image, and the finding for a literal secret value
under a key whose name says it is a credential.

Everything here treats the file as hostile: at most :data:`MAX_CONFIG_BYTES` are
parsed; YAML goes through the C safe loader (no Python objects from tags; libyaml
refuses nesting deeper than 1000) and its node graph is measured *before* it is
turned into Python objects, so that aliases and merge keys (``<<: [*a, *a]``
doubling at every level) cannot expand into more than :data:`MAX_YAML_NODES`
nodes; TOML goes through ``tomllib``. A file that cannot be parsed is scanned by
the content analyzer like any other file; these analyzers say nothing about it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from typing import Any, BinaryIO

import yaml

from scanner.analyzers.interface import LayerContext
from scanner.detection import Detection, is_sensitive_name
from scanner.findings import Category, Finding, Location, Severity, redact
from scanner.secrets.noise import placeholder_reason
from scanner.streams import read_up_to

MAX_CONFIG_BYTES = 1 << 20  # real fly.toml and compose files are a few KB
MAX_YAML_NODES = 100_000  # after expanding aliases and merge keys
MAX_VALUES = 10_000  # key/value pairs looked at per file

SAFE_LOADER: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigTooLarge(Exception):
    """The file, or what its aliases expand to, exceeds a limit (a layer problem)."""


def parse_toml(data: bytes) -> dict[str, Any] | None:
    """The TOML document, or None when it is not one."""
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigTooLarge(f"larger than {MAX_CONFIG_BYTES >> 20} MB")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError, ValueError):
        return None


def parse_yaml(data: bytes) -> Any:
    """The first YAML document, or None when there is none or it does not parse.

    Raises :class:`ConfigTooLarge` when the file or its expansion is too large.
    """
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigTooLarge(f"larger than {MAX_CONFIG_BYTES >> 20} MB")
    loader = SAFE_LOADER(data)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = expanded_size(node)
        if size > MAX_YAML_NODES:
            raise ConfigTooLarge(
                f"its aliases expand to more than {MAX_YAML_NODES} YAML nodes ({size})"
            )
        return loader.construct_document(node)
    except (yaml.YAMLError, RecursionError, ValueError, TypeError):
        return None
    finally:
        loader.dispose()


def expanded_size(root: yaml.Node) -> int:
    """How many nodes the document has once every alias is copied out (memoised:
    linear in the distinct nodes, whatever the expansion; a recursive alias counts
    as too many)."""
    too_many = MAX_YAML_NODES + 1
    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if children_done or not children:
            total = 1 + sum(sizes.get(id(c), too_many) for c in children)
            sizes[key] = min(total, too_many)
            active.discard(key)
            continue
        if key in active:
            return too_many  # an alias inside its own anchor: endless
        active.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in active:
                return too_many
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def is_reference(value: str) -> bool:
    """``${VAR}``, ``$VAR``, ``${VAR:-default}``: a value taken from elsewhere."""
    bare = value.strip()
    return bare.startswith("$") and not bare.startswith("$$")


def literal_secret_finding(
    detection: Detection,
    name: str,
    value: object,
    location: Location,
    *,
    rule_id: str,
    title: str,
    description: str,
) -> Finding | None:
    """A finding for ``name = value`` when the name says credential and the value is a
    literal (not a reference): high, or low with ``noise`` for a placeholder.

    Values a vendor rule recognises are left to the content analyzer, which scans the
    same file and reports them with that rule; generic matches are reported here too,
    with the key name.
    """
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not text or is_reference(text) or not is_sensitive_name(name):
        return None
    for match in detection.scan_text(f"{name}={text}"):
        if not match.rule.generic and match.end > len(name.encode("utf-8", "surrogateescape")):
            return None
    noise = placeholder_reason(text)
    return Finding(
        rule_id=rule_id,
        title=title,
        severity=Severity.LOW if noise else Severity.HIGH,
        category=Category.SECRET,
        location=location,
        match=f"{name}={redact(text)}",
        secret_hash=detection.hash(text),
        description=description,
        secret=text if detection.reveal else None,
        noise=noise,
    )


def note_too_large(layer: LayerContext, path: str, exc: ConfigTooLarge, what: str) -> None:
    """A structured file over a limit: a problem of the layer (its content is still
    scanned by the content analyzer, but ``what`` was not checked)."""
    label = f"layer {layer.index} ({layer.digest[:19]})"
    layer.problems.append(f"{label}: /{path}: {exc}: {what} not checked")


def read_config(content: BinaryIO) -> bytes:
    """At most one byte more than the parse limit (so that too large is seen)."""
    return read_up_to(content, MAX_CONFIG_BYTES + 1)


def line_of(data: bytes, needle: str) -> Callable[[], int | None]:
    """The 1-based line where ``needle`` first occurs (computed on demand)."""

    def find() -> int | None:
        at = data.find(needle.encode("utf-8", "surrogateescape"))
        return None if at < 0 else data.count(b"\n", 0, at) + 1

    return find
