"""Simulated observers over real HTTP; the scaled export recovers the JNDs they were given."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
from werkzeug.serving import make_server

import scaling
from study.experiment import load_manifest
from study.export import export_rows, observer_matrices
from study.simulate import parse_jod, simulate


@pytest.fixture
def live(make_app, h):
    servers = []

    def _start(**over):
        app = make_app(**over)
        port = h.free_port()
        srv = make_server("127.0.0.1", port, app, threaded=True)
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        servers.append((srv, th))
        return app, f"http://127.0.0.1:{port}"

    yield _start
    for srv, th in servers:
        srv.shutdown()
        th.join(5)


def test_parse_jod():
    assert parse_jod("l2=0, mdf=1.5") == {"l2": 0.0, "mdf": 1.5}
    with pytest.raises(ValueError, match="cond=value"):
        parse_jod("l2")


@pytest.mark.slow
def test_bots_take_hits_and_scaling_recovers_their_jnds(live, manifest, h):
    app, url = live(PER_PAIR=60)
    truth = {"l2": 0.0, "ms_ssim_l1": 0.6, "mdf": 1.6}
    results = simulate(
        url,
        42,
        truth,
        careless_rate=0.15,
        exp=load_manifest(manifest),
        concurrency=1,
        seed=3,
        duplicate_rate=0.2,
    )
    served = [r for r in results if r.completed]
    assert len(served) == 40  # the pool holds 40 HITs; the last 2 bots are turned away
    assert all(not r.errors for r in served)
    stored = h.count_rows(app)
    assert stored == sum(r.answers for r in results) == 400
    assert sum(r.duplicates for r in results) > 10  # double clicks were sent and stored once
    rows = export_rows(app.extensions["study_engine"], passed_only=True)
    careless = {r.participant for r in results if r.careless and r.completed}
    kept = {r["observer"] for r in rows}
    assert kept.isdisjoint({p for p in careless if p not in kept}) and len(kept) >= 32
    for r in results:  # careful bots always pass their check
        if r.completed and not r.careless:
            assert r.participant in kept
    conds = ["l2", "ms_ssim_l1", "mdf"]
    MM, _ = observer_matrices(rows, conds)
    res = scaling.pw_scale_bootstrap(MM, n_samples=300, alpha=0.05, seed=1)
    true = np.array([truth[c] for c in conds])
    true -= true.mean()
    assert np.all(res.low <= true) and np.all(true <= res.high), (res.jod, res.low, res.high)
    assert np.argsort(res.jod).tolist() == [0, 1, 2]


def test_bot_errors_are_reported_not_raised(live, manifest):
    _app, url = live()
    res = simulate(url + "/nowhere", 1, {}, careless_rate=0.0)
    assert res[0].errors and not res[0].completed


def test_a_rerun_with_the_same_seed_sends_fresh_answer_ids_and_resumes(live, h):
    """A second run with the same prefix and seed resumes the unfinished HITs: its answer ids
    are fresh (the seed once fixed them, so the rerun hit 409s and left its HITs leased)."""
    import random

    from study.simulate import run_bot

    app, url = live()
    first = run_bot(url, "sim0000", {}, False, None, random.Random(7), max_answers=3)
    again = run_bot(url, "sim0000", {}, False, None, random.Random(7))
    assert first.answers == 3 and not first.errors
    assert again.completed and again.answers == 7 and not again.errors, again.errors
    assert not set(first.acked) & set(again.acked) and h.count_rows(app) == 10

    def sides():
        with h.engine_of(app).connect() as c:
            return [r[0] for r in c.exec_driver_sql("SELECT chosen_side FROM answers ORDER BY id")]

    before = sides()
    replay = run_bot(url, "sim0001", {}, False, None, random.Random(7), max_answers=3)
    assert replay.answers == 3 and sides()[-3:] == before[:3]  # the seeded choices are kept


@pytest.mark.slow
def test_asap_design_spends_fewer_comparisons_on_easy_pairs(live, manifest, h):
    app, url = live(DESIGN="asap", ASAP_BUDGET=180)
    truth = {"l2": 0.0, "ms_ssim_l1": 0.6, "mdf": 2.4}
    results = simulate(
        url, 22, truth, careless_rate=0.0, exp=load_manifest(manifest), concurrency=1, seed=11
    )
    assert sum(r.completed for r in results) == 20  # 180 comparisons = 20 HITs, then 503
    rows = export_rows(app.extensions["study_engine"])
    from collections import Counter

    pairs = Counter(tuple(sorted((r["condition_A"], r["condition_B"]))) for r in rows)
    for image in ("astronaut", "coffee"):  # every image's comparison graph is connected
        got = {
            tuple(sorted((r["condition_A"], r["condition_B"]))) for r in rows if r["image"] == image
        }
        assert len(got) >= 2
    easy = pairs[("l2", "mdf")]
    assert easy < pairs[("l2", "ms_ssim_l1")] and easy < pairs[("mdf", "ms_ssim_l1")], pairs
    MM, _ = observer_matrices(rows, ["l2", "ms_ssim_l1", "mdf"])
    res = scaling.pw_scale(MM.sum(axis=0))
    assert np.argsort(res.jod).tolist() == [0, 1, 2]


def test_paced_bots_keep_the_offered_rate_and_time_from_the_schedule(live, h):
    import time

    app, url = live(PER_PAIR=20)
    t0 = time.perf_counter()
    results = simulate(url, 4, {}, careless_rate=0.0, concurrency=4, rate=40.0, warmup=0.5)
    elapsed = time.perf_counter() - t0
    assert all(r.completed and not r.errors for r in results)
    assert sum(r.answers for r in results) == h.count_rows(app) == 40
    # each bot sends one answer per 4 / 40 = 0.1 s after the 0.5 s warm-up: >= 0.5 + 0.9 s
    assert elapsed >= 1.35
    assert all(len(r.latencies) == 10 and min(r.latencies) >= 0 for r in results)


def test_paced_slots_run_participants_in_turn_with_staggered_starts(live, h):
    import time

    app, url = live(PER_PAIR=40)
    t0 = time.perf_counter()
    results = simulate(
        url, 6, {}, careless_rate=0.0, concurrency=3, rate=30.0, warmup=0.5, stagger=0.6
    )
    assert all(r.completed and not r.errors for r in results)
    assert sum(r.answers for r in results) == h.count_rows(app) == 60
    by_id = {r.participant: r for r in results}
    starts = []
    for k in range(3):  # slot k: bots k and k + 3, one after the other, on one schedule
        first, second = by_id[f"sim{k:04d}"], by_id[f"sim{k + 3:04d}"]
        assert min(second.sent) > max(first.sent)
        ticks = np.diff(first.sent + second.sent)
        assert np.all(ticks >= 0.1 - 1e-6)  # one answer per 3 / 30 = 0.1 s at most
        assert np.allclose(np.round(ticks / 0.1), ticks / 0.1, atol=0.05)  # on the grid
        starts.append(first.sent[0] - t0)
    # the slots' schedules start spread over (interval + stagger) = 0.7 s after the warm-up
    assert starts[0] >= 0.5 - 0.01
    assert np.allclose(np.diff(starts), 0.7 / 3, atol=0.02), starts


def test_simulate_cli_paces_and_reports_latency(live, h):
    from click.testing import CliRunner

    from experiments.cli import main

    app, url = live(PER_PAIR=20)
    args = ["study", "simulate", "--url", url, "--participants", "4", "--concurrency", "2"]
    r = CliRunner().invoke(main, [*args, "--rate", "40", "--stagger", "0.2", "--careless", "0"])
    assert r.exit_code == 0, r.output
    assert "4/4 participants completed, 40 answers stored, 0 errors" in r.output
    assert re.search(r"answer latency: p50 [0-9.]+ ms, p99 [0-9.]+ ms", r.output), r.output
    assert h.count_rows(app) == 40
    r = CliRunner().invoke(main, [*args, "--rate", "40", "--stagger", "-1"])
    assert r.exit_code != 0 and "stagger must be >= 0" in r.output


def test_pacing_arguments_are_checked():
    with pytest.raises(ValueError, match="rate must be > 0"):
        simulate("http://127.0.0.1:9", 2, {}, concurrency=2, rate=0)
    with pytest.raises(ValueError, match="participants >= concurrency"):
        simulate("http://127.0.0.1:9", 2, {}, concurrency=4, rate=10)
    with pytest.raises(ValueError, match="stagger must be >= 0"):
        simulate("http://127.0.0.1:9", 2, {}, concurrency=2, rate=10, stagger=-1)
