"""What runs inside a worker process (a local pool worker or a Dask worker).

A worker keeps one :class:`Detection` per spec digest, built on first use from the
:class:`DetectionSpec` it was sent (never inherited through a module global set before
a fork), and one cache backend per :class:`CacheSpec`. :func:`scan_task` is the task a
Dask worker runs for a layer: look in the shared cache, else scan, store a complete
result, and return the result in its one serialised form.
"""

from __future__ import annotations

import threading

from scanner.cachebackends.interface import CacheBackend, CacheSpec
from scanner.deadline import NO_DEADLINE, Deadline
from scanner.detection import Detection
from scanner.image import Layer
from scanner.layer_scan import scan_layer
from scanner.runners.interface import DetectionSpec, detection_from_spec

# Built lazily inside the worker, keyed by what they were built from.
_detections: dict[DetectionSpec, Detection] = {}
_caches: dict[CacheSpec, CacheBackend] = {}
_lock = threading.Lock()


def detection_for(spec: DetectionSpec) -> Detection:
    with _lock:
        detection = _detections.get(spec)
        if detection is None:
            detection = _detections[spec] = detection_from_spec(spec)
        return detection


def cache_for(spec: CacheSpec) -> CacheBackend:
    from scanner.cachebackends import open_spec

    with _lock:
        cache = _caches.get(spec)
        if cache is None:
            cache = _caches[spec] = open_spec(spec)
        return cache


CLAIM_WAIT = 600.0  # seconds to wait for another sweep scanning the same layer


def scan_task(
    spec: DetectionSpec,
    layer: Layer,
    cache_spec: CacheSpec | None,
    token: str = "",
    deadline: Deadline = NO_DEADLINE,
) -> tuple[bool, bytes]:
    """Scan one layer (or find it in the shared cache): ``(from_cache, result bytes)``.

    With a shared cache the layer is claimed first; when another task (of this sweep or
    another one running at the same time) holds the claim, this one waits for its
    result instead of scanning the same bytes again.
    """
    detection = detection_for(spec)
    # A remote worker cannot add to the client's per-image archive counts: each layer
    # task starts from zero (the per-file and per-layer budgets still apply).
    detection.archive_usage.reset()
    cache = cache_for(cache_spec) if cache_spec is not None and not spec.reveal else None
    if cache is None:
        return False, scan_layer(layer, detection, deadline=deadline).to_bytes()
    hit = cache.get(layer.digest)
    if hit is None and not cache.claim(layer.digest, token):
        wait = (
            CLAIM_WAIT
            if deadline.remaining() is None
            else min(CLAIM_WAIT, deadline.remaining() or 0)
        )
        hit = cache.wait_for(layer.digest, wait)
    if hit is not None:
        return True, hit.to_bytes()
    try:
        result = scan_layer(layer, detection, deadline=deadline)
        cache.put(result)
    finally:
        cache.release(layer.digest, token)
    return False, result.to_bytes()
