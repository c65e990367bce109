"""Display fidelity on the server: the viewing conditions a browser reports, and whether a trial
was shown at one image pixel per device pixel.

The trial page (``static/layout.js``, ``static/study.js``) draws every stimulus at CSS size =
image size / ``devicePixelRatio`` on whole CSS pixels that are also whole device pixels, with
``image-rendering: pixelated``, and measures what the browser drew. Chromium lays out in 1/64
CSS px and, under emulated ratios, snaps images to whole CSS pixels: an image of ``w`` pixels is
drawn exactly at ratio ``r = p/s`` (lowest terms) only when ``p`` divides ``w`` (:func:`quantum`;
1 at ratios 1, 0.5, 0.8; 2 at 2; 3 at 1.5 and 3; 4 at 4; 5 at 1.25 and 2.5; 7 at 1.75; 9 at
90 %; 11 at 110 %). Image sides that are multiples of 60 (120, 240, 480, ...) are exact at
every common ratio but 1.75 and 90/110 % zoom; the page pauses with a message otherwise.

Each answer carries a ``view`` object (:func:`parse_view`); the server decides ``native``
itself (:func:`is_native`) from the drawn rectangles and the image's size in the manifest, so
a client cannot mark a scaled answer as native by saying so. Each HIT page load reports the
screen once (:func:`parse_page_view`, table ``hit_views``).
"""

from __future__ import annotations

import json
import math
import re

__all__ = [
    "INPUTS",
    "LAYOUTS",
    "OUTCOMES",
    "ViewError",
    "is_mobile_user_agent",
    "is_native",
    "native_view",
    "parse_page_view",
    "parse_view",
    "quantum",
]

LAYOUTS = ("side_by_side", "toggle")
FITS = ("full", "crop")
INPUTS = ("key", "click", "touch", "pen")
#: what a HIT page could show: the layout at 1:1 (shown), a 1:1 crop, the toggle layout as
#: the fit policy's fallback, or a pause: window too small (enlarge), a ratio that cannot show
#: the images exactly (inexact), pinch zoom (zoomed), a phone or tablet refused (device)
OUTCOMES = ("shown", "crop", "toggle", "enlarge", "inexact", "zoomed", "device")
POINTERS = ("fine", "coarse", "none")
SLOTS = ("reference", "left", "right")
MAX_EVENTS = 64
#: tolerance of a drawn size or position, device pixels (getBoundingClientRect is exact in
#: 1/64 CSS px; float ratios such as 1.100000023841858 leave ~1e-6)
TOLERANCE = 0.01

_MOBILE_UA = re.compile(
    r"Mobi|Android|iPhone|iPad|iPod|Tablet|Silk/|Kindle|PlayBook|BlackBerry|Opera Mini|IEMobile",
)


def is_mobile_user_agent(user_agent: str | None) -> bool:
    """True for the user agent of a phone or tablet (Android, iOS, iPadOS apps, e-readers).

    iPadOS Safari sends a desktop (Mac) user agent: the consent page's script reports touch-first
    devices as well (``device=touch``), and the trial page checks again."""
    return bool(user_agent) and _MOBILE_UA.search(user_agent) is not None


def quantum(dpr: float, max_denominator: int = 64) -> int | None:
    """The device-pixel step of exact drawing at ``dpr``: the numerator ``p`` of ``dpr = p/s``
    in lowest terms (``s`` <= ``max_denominator``), or None when the ratio is not such a
    fraction (within 1e-4 of a device pixel per CSS px). Sizes and positions that are multiples
    of ``p`` device px are whole CSS px (``s`` each): what Chromium draws without resampling."""
    if not (isinstance(dpr, (int, float)) and math.isfinite(dpr) and dpr > 0):
        return None
    for s in range(1, max_denominator + 1):
        p = dpr * s
        if abs(p - round(p)) < 1e-4 * s and round(p) >= 1:
            return round(p)
    return None


class ViewError(ValueError):
    """A malformed ``view`` report (the answer API answers 400 with this message)."""


def _bad(field: str, why: str):
    raise ViewError(f"view.{field} {why}")


def _value(v, field: str, low: float, high: float) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        _bad(field, "must be a number")
    if not low <= v <= high:
        _bad(field, f"must be in [{low:g}, {high:g}], got {v!r}")
    return float(v)


def _number(obj: dict, field: str, low: float, high: float) -> float:
    return _value(obj.get(field), field, low, high)


def _count(obj: dict, field: str) -> int:
    v = obj.get(field, 0)
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 1_000_000:
        _bad(field, "must be a count (integer >= 0)")
    return v


def _choice(obj: dict, field: str, choices, required: bool = True):
    v = obj.get(field)
    if v is None and not required:
        return None
    if v not in choices:
        _bad(field, f"must be one of {', '.join(choices)}, got {v!r}")
    return v


def _pair(obj: dict, field: str) -> tuple[float, float]:
    v = obj.get(field)
    if not isinstance(v, list) or len(v) != 2:
        _bad(field, "must be [width, height]")
    return _value(v[0], field, 0, 100_000), _value(v[1], field, 0, 100_000)


def _rect(v, field: str) -> tuple[float, float, float, float] | None:
    if v is None:
        return None
    if not isinstance(v, list) or len(v) != 4:
        _bad(field, "must be [x, y, width, height] (CSS px) or null")
    x, y = (_value(c, field, -100_000, 100_000) for c in v[:2])
    w, h = (_value(c, field, 0, 100_000) for c in v[2:])
    return x, y, w, h


def _events(v) -> str | None:
    if v is None:
        return None
    if not isinstance(v, list) or len(v) > MAX_EVENTS:
        _bad("events", f"must be a list of at most {MAX_EVENTS} [ms, kind, detail] entries")
    clean = []
    for e in v:
        if (
            not isinstance(e, list)
            or not 2 <= len(e) <= 3
            or not isinstance(e[0], (int, float))
            or isinstance(e[0], bool)
            or not isinstance(e[1], str)
            or not re.fullmatch(r"[a-z_]{1,16}", e[1])
            or (len(e) == 3 and not re.fullmatch(r"[A-Za-z0-9_.:x -]{0,40}", str(e[2])))
        ):
            _bad("events", "entries must be [ms, kind (a-z_), detail (short text)]")
        clean.append([round(float(e[0]), 1), e[1], *([str(e[2])] if len(e) == 3 else [])])
    return json.dumps(clean, separators=(",", ":"))


def parse_view(view) -> dict | None:
    """The ``answer_views`` columns of an answer's ``view`` object (None when it has none).

    ``view``: ``layout`` (side_by_side/toggle), ``fit`` (full/crop), ``dpr``, ``zoom`` (visual
    viewport scale), ``viewport`` and ``screen`` ([w, h] CSS px), ``drawn`` ({slot: [x, y, w,
    h] CSS px of the image element, or null for a slot never shown}), ``window`` ([x, y, w, h]
    image px of the crop, or null), ``input`` (key/click/touch/pen), counts ``hidden_ms``,
    ``visibility_changes``, ``layout_changes``, ``toggles``, ``reference_views`` and ``events``
    (at most :data:`MAX_EVENTS`). Raises :class:`ViewError` naming the first bad field. The
    drawn rectangles are kept under ``"_rects"`` for :func:`is_native`.
    """
    if view is None:
        return None
    if not isinstance(view, dict):
        raise ViewError("view must be an object")
    dpr = _number(view, "dpr", 0.05, 16)
    vw, vh = _pair(view, "viewport")
    sw, sh = _pair(view, "screen")
    drawn = view.get("drawn")
    if not isinstance(drawn, dict) or set(drawn) - set(SLOTS):
        _bad("drawn", "must map reference/left/right to [x, y, w, h] or null")
    rects = {s: _rect(drawn.get(s), f"drawn.{s}") for s in SLOTS}
    win = view.get("window")
    if win is not None and (
        not isinstance(win, list)
        or len(win) != 4
        or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in win)
        or win[2] < 1
        or win[3] < 1
    ):
        _bad("window", "must be [x, y, width, height] in whole image pixels, or null")
    row = {
        "layout": _choice(view, "layout", LAYOUTS),
        "fit": _choice(view, "fit", FITS),
        "dpr": dpr,
        "zoom": _number(view, "zoom", 0.01, 100),
        "viewport_w": vw,
        "viewport_h": vh,
        "screen_w": sw,
        "screen_h": sh,
        "crop_x": None if win is None else win[0],
        "crop_y": None if win is None else win[1],
        "crop_w": None if win is None else win[2],
        "crop_h": None if win is None else win[3],
        "input": _choice(view, "input", INPUTS),
        "hidden_ms": _number(view, "hidden_ms", 0, 3.6e7),
        "visibility_changes": _count(view, "visibility_changes"),
        "layout_changes": _count(view, "layout_changes"),
        "toggles": _count(view, "toggles"),
        "reference_views": _count(view, "reference_views"),
        "events": _events(view.get("events")),
    }
    for s in SLOTS:
        r = rects[s]
        row[f"{s}_w"] = None if r is None else round(r[2] * dpr, 4)
        row[f"{s}_h"] = None if r is None else round(r[3] * dpr, 4)
    if (row["fit"] == "crop") != (win is not None):
        _bad("window", "is given exactly when fit is crop")
    row["_rects"] = rects
    return row


def _whole(x: float) -> bool:
    return abs(x - round(x)) <= TOLERANCE


def is_native(row: dict, width: int, height: int) -> bool:
    """Whether a parsed view (:func:`parse_view`) shows an image of ``width`` x ``height``
    pixels at one image pixel per device pixel: every slot the layout shows (all three side by
    side; both candidates in the toggle layout, and the reference if it was viewed) drawn at
    ``width`` x ``height`` device px, at whole CSS px that are whole device px, no pinch zoom,
    and a crop window (if any) inside the image on the same grid."""
    dpr, rects = row["dpr"], row["_rects"]
    if abs(row["zoom"] - 1) > 1e-3:
        return False
    needed = ["left", "right"]
    if row["layout"] == "side_by_side" or row["reference_views"] or rects["reference"]:
        needed.append("reference")
    for slot in needed:
        r = rects[slot]
        if r is None:
            return False
        x, y, w, h = r
        if abs(w * dpr - width) > TOLERANCE or abs(h * dpr - height) > TOLERANCE:
            return False
        if not all(_whole(v) and _whole(v * dpr) for v in (x, y)):
            return False
    if row["crop_w"] is not None:
        q = quantum(dpr)
        box = (row["crop_x"], row["crop_y"], row["crop_w"], row["crop_h"])
        if q is None or any(v % q for v in box):
            return False
        if box[0] + box[2] > width or box[1] + box[3] > height:
            return False
    return True


def parse_page_view(payload, user_agent: str | None) -> dict:
    """The ``hit_views`` columns of a HIT page's report (JSON object): ``outcome``
    (:data:`OUTCOMES`), ``layout`` (or null), ``dpr``, ``zoom``, ``viewport``, ``screen``,
    ``pointer`` (fine/coarse/none) and ``touch_points``; ``user_agent`` from the request.
    Raises :class:`ViewError` naming the first bad field."""
    if not isinstance(payload, dict):
        raise ViewError("expected a JSON object")
    vw, vh = _pair(payload, "viewport")
    sw, sh = _pair(payload, "screen")
    return {
        "outcome": _choice(payload, "outcome", OUTCOMES),
        "layout": _choice(payload, "layout", LAYOUTS, required=False),
        "dpr": _number(payload, "dpr", 0.05, 16),
        "zoom": _number(payload, "zoom", 0.01, 100),
        "viewport_w": vw,
        "viewport_h": vh,
        "screen_w": sw,
        "screen_h": sh,
        "pointer": _choice(payload, "pointer", POINTERS),
        "touch_points": min(_count(payload, "touch_points"), 1000),
        "user_agent": (user_agent or "")[:512] or None,
    }


def native_view(width: int, height: int, dpr: int = 1, input: str = "key") -> dict:
    """The ``view`` a browser reports for a trial of ``width`` x ``height`` images shown side by
    side at 1:1 in a 1920 x 1080 (CSS px) window at ratio ``dpr`` (an integer): what the
    simulated participants (:mod:`study.simulate`) send, a display without scaling."""
    w, h = width / dpr, height / dpr
    y = 48
    drawn = {s: [24 + k * (w + 24), y, w, h] for k, s in enumerate(("left", "reference", "right"))}
    return {
        "layout": "side_by_side", "fit": "full", "dpr": dpr, "zoom": 1,
        "viewport": [1920, 1080], "screen": [1920, 1080], "drawn": drawn, "window": None,
        "input": input, "hidden_ms": 0, "visibility_changes": 0, "layout_changes": 0,
        "toggles": 0, "reference_views": 0, "events": [],
    }  # fmt: skip
