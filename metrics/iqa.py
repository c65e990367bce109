"""Losses as full-reference quality metrics: data-set loaders (TID2013 layout, generic CSVs such
as KADID-10k or the JND-scaled TID2013), resumable scoring, correlations with bootstrap CIs over
reference contents, a per-distortion table and scatter plots (MDF paper, section 6)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from scaling.contracts.atomic import write_csv

_TID_NAME = re.compile(r"^i(\d+)_(\d+)_(\d+)\.[a-z]+$", re.IGNORECASE)

#: Options applied when a metric is used for reporting (override with ``metric_options``).
REPORTING_DEFAULTS: dict[str, dict] = {"ssim": {"matlab": True}, "ms_ssim": {"matlab": True}}


def _index_folder(folder: Path) -> dict[str, Path]:
    """Lower-case file name -> path, for case-insensitive look-ups."""
    if not folder.is_dir():
        raise FileNotFoundError(f"folder not found: {folder}")
    return {p.name.lower(): p for p in folder.iterdir() if p.is_file()}


def _find(index: dict[str, Path], name: str, what: str) -> Path:
    p = index.get(name.lower())
    if p is None:
        raise FileNotFoundError(f"{what} {name!r} not found (names are matched case-insensitively)")
    return p


def _tid_reference_name(ref_id: int, index: dict[str, Path]) -> Path:
    for ext in (".bmp", ".png"):
        name = f"i{ref_id:02d}{ext}"
        if name in index:
            return index[name]
    raise FileNotFoundError(f"reference image I{ref_id:02d}.BMP not found in reference_images/")


def load_tid2013(root: str | os.PathLike) -> pd.DataFrame:
    """Load a data set in the TID2013 layout.

    Expects ``reference_images/`` (``I01.BMP`` ... ``i25.bmp``), ``distorted_images/``
    (``iXX_YY_Z.bmp``: reference XX, distortion type YY, level Z), ``mos_with_names.txt``
    (``"<MOS> <name>"`` per line) and optionally ``mos_std.txt`` (one value per line, same
    order). File names are matched case-insensitively.

    Returns:
        DataFrame with columns ``image`` (name as listed), ``path``, ``reference`` (path),
        ``ref_id``, ``distortion``, ``level``, ``score`` (MOS, higher is better), ``score_std``.

    Reference: Ponomarenko et al., "Image database TID2013: Peculiarities, results and
    perspectives", Signal Processing: Image Communication 30, 2015.
    """
    root = Path(root)
    ref_index = _index_folder(root / "reference_images")
    dist_index = _index_folder(root / "distorted_images")
    mos_file = next((p for p in root.iterdir() if p.name.lower() == "mos_with_names.txt"), None)
    if mos_file is None:
        raise FileNotFoundError(f"mos_with_names.txt not found in {root}")
    rows = []
    for line_no, line in enumerate(mos_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{mos_file}:{line_no}: expected '<MOS> <name>', got {line!r}")
        mos, name = float(parts[0]), parts[1]
        m = _TID_NAME.match(name)
        if not m:
            raise ValueError(f"{mos_file}:{line_no}: name {name!r} is not iXX_YY_Z.ext")
        ref_id, dist, level = (int(g) for g in m.groups())
        rows.append(
            {
                "image": name,
                "path": _find(dist_index, name, "distorted image"),
                "reference": _tid_reference_name(ref_id, ref_index),
                "ref_id": ref_id,
                "distortion": dist,
                "level": level,
                "score": mos,
            }
        )
    if not rows:
        raise ValueError(f"{mos_file} lists no images")
    df = pd.DataFrame(rows)
    std_file = next((p for p in root.iterdir() if p.name.lower() == "mos_std.txt"), None)
    df["score_std"] = np.nan
    if std_file is not None:
        std = [float(v) for v in std_file.read_text().split()]
        if len(std) != len(df):
            raise ValueError(f"{std_file} has {len(std)} values for {len(df)} images")
        df["score_std"] = std
    return df


def load_score_csv(
    csv_path: str | os.PathLike,
    image_dir: str | os.PathLike,
    reference_dir: str | os.PathLike,
    *,
    image_col: str = "image",
    score_col: str = "score",
    reference_col: str | None = None,
    higher_better: bool = True,
) -> pd.DataFrame:
    """Load (image, score) pairs from a CSV, e.g. the JND-scaled TID2013 scores of Mikhailiuk
    et al. (QoMEX 2018) or KADID-10k's ``dmos.csv`` (``image_col="dist_img"``,
    ``reference_col="ref_img"``, ``score_col="dmos"``).

    Without ``reference_col`` the reference, content id, distortion type and level come from
    TID-style names ``iXX_YY_Z.ext``; with it, the content id is the reference name and the
    distortion/level come from KADID-style names ``IXX_YY_ZZ.png`` when they match, else are
    left as -1. ``higher_better=False`` flips the sign of the scores (e.g. DMOS, JND
    distances) so that the returned ``score`` is always "higher is better".
    """
    csv_path = Path(csv_path)
    table = pd.read_csv(csv_path)
    for col in (image_col, score_col) + ((reference_col,) if reference_col else ()):
        if col not in table.columns:
            raise ValueError(f"{csv_path}: column {col!r} missing (columns: {list(table.columns)})")
    dist_index = _index_folder(Path(image_dir))
    ref_index = _index_folder(Path(reference_dir))
    rows = []
    for _, r in table.iterrows():
        name = str(r[image_col])
        m = _TID_NAME.match(name)
        if reference_col:
            ref = _find(ref_index, str(r[reference_col]), "reference image")
            ref_key = ref.name.lower()
            dist, level = (int(m.group(2)), int(m.group(3))) if m else (-1, -1)
        else:
            if not m:
                raise ValueError(f"{csv_path}: {name!r} is not iXX_YY_Z.ext; pass reference_col")
            ref = _tid_reference_name(int(m.group(1)), ref_index)
            ref_key = int(m.group(1))
            dist, level = int(m.group(2)), int(m.group(3))
        score = float(r[score_col]) * (1 if higher_better else -1)
        rows.append(
            {
                "image": name,
                "path": _find(dist_index, name, "distorted image"),
                "reference": ref,
                "ref_id": ref_key,
                "distortion": dist,
                "level": level,
                "score": score,
                "score_std": np.nan,
            }
        )
    if not rows:
        raise ValueError(f"{csv_path} lists no images")
    df = pd.DataFrame(rows)
    df["ref_id"] = pd.factorize(df["ref_id"])[0] + 1 if reference_col else df["ref_id"]
    return df


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """An 8-bit image file as a (3, H, W) float32 tensor in [0, 1] (grey is repeated)."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def score_dataset(
    dataset: pd.DataFrame,
    metric_names: Sequence[str],
    out_csv: str | os.PathLike,
    *,
    metric_options: dict[str, dict] | None = None,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    progress: bool = True,
    save_every: int = 1,
) -> pd.DataFrame:
    """Score every distorted image of ``dataset`` against its reference with each metric.

    Results go to ``out_csv`` in long format (``image, metric, value``), rewritten atomically
    every ``save_every`` batches, so an interrupted run resumes where it stopped: pairs already
    in the file are skipped. Metrics are created with ``as_loss=False`` where that applies
    (familiar values: SSIM, not 1 - SSIM), :data:`REPORTING_DEFAULTS` (MATLAB-compatible SSIM),
    then ``metric_options[name]``. Images are batched per reference content and size.

    Returns:
        The full long-format table (previous and new rows).
    """
    from tqdm.auto import tqdm

    import metrics

    out_csv = Path(out_csv)
    done = pd.DataFrame(columns=["image", "metric", "value"])
    if out_csv.exists():
        done = pd.read_csv(out_csv)
        if list(done.columns) != ["image", "metric", "value"]:
            raise ValueError(f"{out_csv} is not a score file (columns image, metric, value)")
    seen = set(zip(done["image"].astype(str), done["metric"].astype(str)))
    rows = done.to_dict("records")
    device = torch.device(device)
    for name in metric_names:
        opts = {**REPORTING_DEFAULTS.get(name, {}), **(metric_options or {}).get(name, {})}
        entry_takes_as_loss = name in ("ssim", "ms_ssim", "vgg", "lpips")
        if entry_takes_as_loss:
            opts.setdefault("as_loss", False)
        todo = dataset[[(img, name) not in seen for img in dataset["image"].astype(str)]]
        if todo.empty:
            continue
        metric = metrics.create(name, **opts).to(device).eval()
        groups = [g for _, g in todo.groupby("reference", sort=True)]
        batches = [g.iloc[i : i + batch_size] for g in groups for i in range(0, len(g), batch_size)]
        bar = tqdm(total=len(todo), desc=f"{name}", unit="img", disable=not progress)
        for k, batch in enumerate(batches):
            ref = read_image(batch["reference"].iloc[0])
            xs = [read_image(p) for p in batch["path"]]
            for img, x in zip(batch["image"], xs):
                if x.shape != ref.shape:
                    raise ValueError(
                        f"{img}: size {tuple(x.shape)} differs from its reference "
                        f"{tuple(ref.shape)}"
                    )
            x = torch.stack(xs).to(device)
            y = ref.unsqueeze(0).expand_as(x).to(device)
            with torch.no_grad():
                vals = metric(x, y).double().cpu().tolist()
            rows.extend(
                {"image": i, "metric": name, "value": v} for i, v in zip(batch["image"], vals)
            )
            bar.update(len(batch))
            if (k + 1) % save_every == 0 or k == len(batches) - 1:
                write_csv(pd.DataFrame(rows, columns=["image", "metric", "value"]), out_csv)
        bar.close()
    table = pd.DataFrame(rows, columns=["image", "metric", "value"])
    write_csv(table, out_csv)
    return table


def lower_better(name: str) -> bool:
    """Whether a metric's reporting value (``as_loss=False``) is better when lower."""
    return name not in ("psnr", "ssim", "ms_ssim")


def _corr(score: np.ndarray, value: np.ndarray) -> tuple[float, float, float]:
    if np.ptp(score) == 0 or np.ptp(value) == 0:
        return (np.nan, np.nan, np.nan)
    return (
        stats.spearmanr(score, value)[0],
        stats.kendalltau(score, value)[0],
        stats.pearsonr(score, value)[0],
    )


def _merged(scores: pd.DataFrame, dataset: pd.DataFrame, name: str) -> pd.DataFrame:
    sub = scores[scores["metric"] == name][["image", "value"]]
    merged = dataset.merge(sub, on="image", how="inner")
    if merged.empty:
        raise ValueError(f"no scores for metric {name!r}")
    sign = -1.0 if lower_better(name) else 1.0
    merged["oriented"] = sign * merged["value"]
    return merged


def correlations(
    scores: pd.DataFrame,
    dataset: pd.DataFrame,
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """SROCC, KROCC and PLCC of each metric's values against the subjective scores, with
    bootstrap confidence intervals over reference contents.

    Images sharing a reference are not independent, so each bootstrap sample draws reference
    contents with replacement and takes all their images (paper-protocol.md). Values are
    oriented so that positive means agreement (lower-is-better metrics are negated). PLCC is
    the plain linear correlation (no logistic mapping). Percentile intervals.

    Returns:
        One row per metric: ``metric, n, srocc, srocc_lo, srocc_hi, krocc, ..., plcc_hi``.
    """
    from tqdm.auto import tqdm

    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    rng = np.random.default_rng(seed)
    out = []
    names = list(dict.fromkeys(scores["metric"]))
    for name in names:
        m = _merged(scores, dataset, name)
        refs = np.unique(m["ref_id"])
        by_ref = {r: np.flatnonzero(m["ref_id"].to_numpy() == r) for r in refs}
        s, v = m["score"].to_numpy(float), m["oriented"].to_numpy(float)
        point = _corr(s, v)
        boots = np.empty((n_boot, 3))
        for b in tqdm(range(n_boot), desc=f"bootstrap {name}", disable=not progress):
            pick = rng.choice(refs, size=len(refs), replace=True)
            idx = np.concatenate([by_ref[r] for r in pick])
            boots[b] = _corr(s[idx], v[idx])
        alpha = (1 - ci) / 2
        lo = np.nanquantile(boots, alpha, axis=0)
        hi = np.nanquantile(boots, 1 - alpha, axis=0)
        row = {"metric": name, "n": len(m), "contents": len(refs)}
        for j, key in enumerate(("srocc", "krocc", "plcc")):
            row.update({key: point[j], f"{key}_lo": lo[j], f"{key}_hi": hi[j]})
        out.append(row)
    return pd.DataFrame(out)


def per_distortion_srocc(scores: pd.DataFrame, dataset: pd.DataFrame) -> pd.DataFrame:
    """SROCC (oriented, see :func:`correlations`) per distortion type (rows) and metric
    (columns), plus an ``all`` row."""
    names = list(dict.fromkeys(scores["metric"]))
    table = {}
    for name in names:
        m = _merged(scores, dataset, name)
        col = {
            int(d): _corr(g["score"].to_numpy(float), g["oriented"].to_numpy(float))[0]
            for d, g in m.groupby("distortion")
        }
        col["all"] = _corr(m["score"].to_numpy(float), m["oriented"].to_numpy(float))[0]
        table[name] = col
    df = pd.DataFrame(table)
    df.index.name = "distortion"
    return df


def scatter_figure(
    scores: pd.DataFrame, dataset: pd.DataFrame, metric_names: Iterable[str] | None = None
):
    """One scatter plot per metric: metric value (x) against the subjective score (y),
    coloured by distortion type, SROCC in the title. Returns a matplotlib ``Figure``."""
    from matplotlib import colormaps
    from matplotlib.colors import BoundaryNorm
    from matplotlib.figure import Figure

    names = list(metric_names or dict.fromkeys(scores["metric"]))
    types = sorted(int(d) for d in dataset["distortion"].unique())
    cmap = colormaps["tab20"].resampled(max(len(types), 2))
    # one colour per distortion type, whatever the type numbers are
    code = {d: i for i, d in enumerate(types)}
    norm = BoundaryNorm(np.arange(len(types) + 1) - 0.5, cmap.N)
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.6 * rows), layout="constrained")
    sc = None
    for k, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, k + 1)
        m = _merged(scores, dataset, name)
        c = m["distortion"].map(code)
        sc = ax.scatter(m["value"], m["score"], c=c, s=6, cmap=cmap, norm=norm, alpha=0.7)
        srocc = _corr(m["score"].to_numpy(float), m["oriented"].to_numpy(float))[0]
        arrow = "lower is better" if lower_better(name) else "higher is better"
        ax.set(
            title=f"{name}: SROCC {srocc:.3f}",
            xlabel=f"{name} ({arrow})",
            ylabel="subjective score",
        )
    bar = fig.colorbar(sc, ax=fig.axes, label="distortion type", shrink=0.8)
    bar.set_ticks(range(len(types)), labels=[str(d) for d in types])
    return fig
