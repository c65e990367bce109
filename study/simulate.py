"""Simulated participants who take HITs over HTTP, as a browser would.

Each bot opens the consent page, posts the consent form (with its CSRF token and a same-origin
``Origin`` header), follows the redirect to its HIT page, reads the trial list embedded in it
and answers every trial through the JSON API with a fresh ``answer_id`` (retried with the same
id on connection errors). To answer by a model a bot must know which condition it is looking
at, yet the study never tells: like a person, it looks at the images. It downloads the three
images of each trial and recognises the conditions by the SHA-256 of their bytes (from the
experiment's files). In an attention check it knows neither candidate (the reference side is
a pixel-different twin of the reference, so checks stay blind): it picks the candidate that
differs least from the reference, pixel by pixel. Every answer reports a display without
scaling (``study.display.native_view``: side by side at 1:1), as a bot reads the PNGs exactly.

Careful bots answer by Thurstone Case V with the given JND scores:
P(left chosen) = Phi((q_left - q_right) / 1.4826) (1 JND = 75% preference, pwcmp's unit:
``scaling.contracts.units.preference_from_jnd``), and
pick the reference in attention checks. Careless bots click at random (and so fail a check
with probability 1/2 each).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import random
import re
import secrets
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from scaling.contracts.units import preference_from_jnd

from .display import native_view
from .experiment import CHECK_REFERENCE, Experiment
from .images import closer_to_reference

__all__ = ["BotResult", "hash_table", "parse_jod", "run_bot", "simulate"]


@dataclass
class BotResult:
    """What one bot did: its id, answers stored, latencies (s), retries and errors."""

    participant: str
    careless: bool
    answers: int = 0
    duplicates: int = 0
    latencies: list[float] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)  # when each latency's clock started
    errors: list[str] = field(default_factory=list)
    completed: bool = False
    acked: list[str] = field(default_factory=list)  # answer ids the server confirmed
    client: object = field(default=None, repr=False, compare=False)


def parse_jod(text: str) -> dict[str, float]:
    """Parse ``"cond=value,cond=value"`` into a dict of JND scores; ValueError if malformed."""
    out = {}
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--jod item {item!r} is not cond=value")
        try:
            out[name.strip()] = float(value)
        except ValueError as exc:
            raise ValueError(f"--jod value for {name!r} is not a number: {value!r}") from exc
    return out


def hash_table(exp: Experiment) -> dict[str, dict[str, str]]:
    """image id -> {sha256 of file bytes: condition id (or the check reference)}."""
    table = {}
    for e in exp.images:
        files = {CHECK_REFERENCE: e.reference, **e.outputs}
        table[e.id] = {hashlib.sha256(p.read_bytes()).hexdigest(): c for c, p in files.items()}
    return table


class _Client:
    """A minimal browser-like HTTP/1.1 client: one persistent (keep-alive) connection,
    same-site redirects followed, nothing followed off-site (e.g. to Prolific)."""

    def __init__(self, base: str, timeout: float):
        parts = urllib.parse.urlsplit(base.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--url must be http(s)://host[:port], got {base!r}")
        self.parts = parts
        self.prefix = parts.path
        self.timeout = timeout
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.conn = None

    def _connection(self):
        if self.conn is None:
            cls = (
                http.client.HTTPSConnection
                if self.parts.scheme == "https"
                else http.client.HTTPConnection
            )
            self.conn = cls(self.parts.hostname, self.parts.port, timeout=self.timeout)
        return self.conn

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _once(self, method, path, data, headers):
        for attempt in (0, 1):
            reused = self.conn is not None
            conn = self._connection()
            try:
                conn.request(method, path, body=data, headers=headers)
                r = conn.getresponse()
                body = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, body, r.getheader("Location")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # the server closed an idle keep-alive connection: reconnect once (answers are
                # idempotent by answer_id, so a resent POST is stored once)
                self.close()
                if attempt or not reused:
                    raise
            except BaseException:
                self.close()
                raise
        raise ConnectionError("unreachable")  # pragma: no cover

    def request(self, method, path, data=None, headers=None):
        """Send one request (following same-site redirects); return (status, body, url)."""
        if path.startswith("http"):
            path = urllib.parse.urlsplit(path).path
        elif not path.startswith(self.prefix):
            path = self.prefix + path
        for _ in range(5):
            status, body, location = self._once(method, path, data, dict(headers or {}))
            url = self.origin + path
            if status not in (301, 302, 303, 307, 308) or not location:
                return status, body, url
            target = urllib.parse.urljoin(url, location)
            if not target.startswith(self.origin + "/"):
                return status, body, target  # off-site: not followed
            path = target[len(self.origin) :]
            if status in (301, 302, 303):
                method, data = "GET", None
                headers = {k: v for k, v in (headers or {}).items() if k.lower() != "content-type"}
        return status, body, url


def run_bot(
    base_url: str,
    participant: str,
    jod: dict[str, float],
    careless: bool,
    hashes: dict | None,
    rng: random.Random,
    platform: str = "local",
    timeout: float = 30.0,
    duplicate_rate: float = 0.0,
    max_answers: int | None = None,
    pace: tuple[float, float] | None = None,
) -> BotResult:
    """Take one HIT at ``base_url`` as ``participant``; see the module docstring.

    ``pace = (origin, interval)`` (``time.perf_counter()`` seconds) sends the answers on the
    ticks ``origin + j * interval`` instead of as fast as possible, starting at the first tick
    after the HIT page arrived (an open-loop load: a bot that falls behind sends at once), and
    measures each answer's latency from its scheduled tick, so a slow server is not hidden by
    bots waiting for it (no "coordinated omission"). Bots that take turns on one schedule
    (``simulate``'s slots) share its origin.

    ``hashes`` (from ``hash_table``) lets the bot recognise conditions; without it every answer
    is random. ``duplicate_rate``: probability of sending an answer twice (double click).
    ``max_answers`` stops early (to simulate a participant who leaves). Network failures end
    the bot and are reported in ``errors``; they are never raised.
    """
    res = BotResult(participant, careless)
    try:
        args = (jod, hashes, rng, platform, duplicate_rate, max_answers, pace)
        return _run_bot(res, _Client(base_url, timeout), *args)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        res.errors.append(f"{type(exc).__name__}: {exc}")
        return res
    finally:
        if res.client is not None:
            res.client.close()


def _run_bot(res, c, jod, hashes, rng, platform, duplicate_rate, max_answers, pace) -> BotResult:
    participant, careless = res.participant, res.careless
    res.client = c
    if platform == "prolific":
        q = {"PROLIFIC_PID": participant, "STUDY_ID": "sim-study", "SESSION_ID": "s-" + participant}
    else:
        q = {"participant_id": participant}
    status, body, _ = c.request("GET", "/?" + urllib.parse.urlencode(q))
    m = re.search(rb'name="csrf" value="([^"]+)"', body)
    if status != 200 or not m:
        res.errors.append(f"consent page: HTTP {status}")
        return res
    form = dict(q, csrf=m.group(1).decode(), consent="yes")
    status, body, url = c.request(
        "POST",
        "/start",
        urllib.parse.urlencode(form).encode(),
        {"Origin": c.origin, "Content-Type": "application/x-www-form-urlencoded"},
    )
    if status == 200 and "/done/" in url:  # this participant had already completed the study
        res.completed = True
        return res
    if status != 200 or "/hit/" not in url:
        res.errors.append(f"start: HTTP {status} at {url}")
        return res
    m = re.search(rb'<script type="application/json" id="hit-data">(.*?)</script>', body, re.DOTALL)
    if not m:
        res.errors.append("no trial data on the HIT page")
        return res
    data = json.loads(m.group(1))
    headers = {
        "Content-Type": "application/json",
        "X-Requested-With": "mdf-study",
        "Origin": c.origin,
    }
    first_tick = None
    # answer ids: fresh in every run (a rerun with the same seed and ids resumes its HITs
    # instead of resending ids the server already holds), while the seeded rng still draws
    # the same stream of choices
    nonce = secrets.randbits(128)
    for t in data["trials"]:
        if t["answered"]:
            continue
        if max_answers is not None and res.answers >= max_answers:
            return res
        side = "left" if rng.random() < 0.5 else "right"
        if hashes is not None and not careless:
            seen, pngs = {}, {}
            for slot in ("left", "right", "reference"):
                st, img, _ = c.request("GET", t["urls"][slot])
                if st != 200:
                    res.errors.append(f"image {slot}: HTTP {st}")
                    return res
                seen[slot], pngs[slot] = hashlib.sha256(img).hexdigest(), img
            image_table = next((h for h in hashes.values() if seen["reference"] in h), {})
            left = image_table.get(seen["left"])
            right = image_table.get(seen["right"])
            if left is None and right is None:  # a check: the side that looks like the reference
                side = closer_to_reference(pngs)
            elif CHECK_REFERENCE in (left, right):
                side = "left" if left == CHECK_REFERENCE else "right"
            else:
                p_left = preference_from_jnd(jod.get(left, 0.0) - jod.get(right, 0.0))
                side = "left" if rng.random() < p_left else "right"
        answer_id = str(uuid.UUID(int=rng.getrandbits(128) ^ nonce))
        payload = json.dumps(
            {
                "answer_id": answer_id,
                "trial_id": t["id"],
                "side": side,
                "rt_ms": round(rng.uniform(600, 3000), 1),
                "view": native_view(*t["size"]),
            }
        ).encode()
        sends = 2 if rng.random() < duplicate_rate else 1
        scheduled = None
        if pace is not None:
            if first_tick is None:  # the first tick after the HIT page arrived
                first_tick = max(0, math.ceil((time.perf_counter() - pace[0]) / pace[1]))
            scheduled = pace[0] + pace[1] * (first_tick + res.answers + res.duplicates)
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        for k in range(sends):
            for attempt in range(6):
                t0 = time.perf_counter() if scheduled is None or k or attempt else scheduled
                try:
                    st, body, _ = c.request("POST", data["answer_url"], payload, headers)
                except (OSError, http.client.HTTPException) as exc:
                    if attempt == 5:
                        res.errors.append(f"answer: {exc}")
                        return res
                    time.sleep(0.2 * 2**attempt)
                    continue
                res.latencies.append(time.perf_counter() - t0)
                res.sent.append(t0)
                if st >= 500 and attempt < 5:
                    time.sleep(0.2 * 2**attempt)
                    continue
                break
            if st != 200:
                res.errors.append(f"answer: HTTP {st} {body[:200]!r}")
                return res
            reply = json.loads(body)
            if reply.get("duplicate"):
                res.duplicates += 1
            elif k == 0:
                res.answers += 1
            if k == 0:
                res.acked.append(answer_id)
        if reply.get("done"):
            res.completed = True
            if platform == "local":  # (Prolific's page would redirect off this machine)
                st, _, _ = c.request("GET", reply["next"])
                if st != 200:
                    res.errors.append(f"completion page: HTTP {st}")
    return res


def simulate(
    base_url: str,
    participants: int,
    jod: dict[str, float],
    careless_rate: float = 0.1,
    exp: Experiment | None = None,
    concurrency: int = 8,
    seed: int = 0,
    prefix: str = "sim",
    duplicate_rate: float = 0.0,
    progress: bool = False,
    platform: str = "local",
    rate: float | None = None,
    warmup: float = 1.0,
    stagger: float = 0.0,
) -> list[BotResult]:
    """Run ``participants`` bots, ``concurrency`` at a time; return one ``BotResult`` each.

    ``exp`` lets careful bots recognise conditions (else all answers are random).
    Without ``rate`` the bots answer as fast as the server replies (a closed loop).

    ``rate`` (answers/s, all bots together) paces the answers instead: ``concurrency`` slots,
    each a participant at a time (bots ``k``, ``k + concurrency``, ... in turn, the next one
    starting when the last finished, as people arriving one after another), each sending one
    answer per ``concurrency / rate`` seconds on its own schedule (``run_bot``'s ``pace``).
    The schedules start ``warmup`` seconds after the call (time for consent and HIT
    allocation), their phases spread evenly over one interval and their starts over
    ``stagger`` seconds: with ``stagger`` about one HIT's duration, HITs start and finish
    spread in time as in a real study rather than all at once.
    """
    if participants < 1 or concurrency < 1:
        raise ValueError("participants and concurrency must be >= 1")
    if not 0 <= careless_rate <= 1:
        raise ValueError(f"careless_rate must be in [0, 1], got {careless_rate}")
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be > 0 answers/s, got {rate}")
    if rate is not None and participants < concurrency:
        raise ValueError("a paced run needs participants >= concurrency (one slot per bot)")
    if stagger < 0:
        raise ValueError(f"stagger must be >= 0 s, got {stagger}")
    hashes = hash_table(exp) if exp is not None else None
    master = random.Random(seed)
    plans = [
        (f"{prefix}{k:04d}", master.random() < careless_rate, master.getrandbits(64))
        for k in range(participants)
    ]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=participants, desc="participants", unit="bot")

    def one(plan, pace):
        pid, careless, s = plan
        rng = random.Random(s)
        res = run_bot(
            base_url, pid, jod, careless, hashes, rng, platform, duplicate_rate=duplicate_rate,
            pace=pace,
        )  # fmt: skip
        if bar is not None:
            bar.update(1)
        return res

    results = []
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        if rate is None:
            futs = [pool.submit(one, plan, None) for plan in plans]
        else:
            interval = concurrency / rate
            start = time.perf_counter() + warmup

            def slot(k):
                origin = start + (interval + stagger) * k / concurrency
                return [one(plan, (origin, interval)) for plan in plans[k::concurrency]]

            futs = [pool.submit(slot, k) for k in range(concurrency)]
        for f in as_completed(futs):
            got = f.result()
            results.extend(got if isinstance(got, list) else [got])
    if bar is not None:
        bar.close()
    results.sort(key=lambda r: r.participant)
    return results
