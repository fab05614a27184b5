"""The teacher's on-manifold response to each ERA5 variable, and its check against the
generator's own.

For every held-out window and variable v, the teacher samples the next frame twice from the
same starting noise: with the window's ERA5, and with variable v taken from another storm at
the same time (the partner of the other-storm control of :mod:`mdcli.forecast.heldout`),
every other variable kept, at every ERA5 step or (``eval.response_steps: last``) at the last
only, as the generator's fork changes only the step that drives t -> t+1; this is repeated
for ``eval.response_draws`` noise draws and averaged. The response is the change of the
storm summaries of the first predicted frame: centre (motion, pixels), cloud-top coldness (K)
and cloudy area. Swapping for a real field keeps the input on the data manifold, unlike
``do(v = 0)``.

What is swapped: on synthetic data, the other storm's *environment* of v with the window's
own storm part kept (``HeldOut.era5_swap``), so the field still shows this storm's low where
the frames show the storm; on real data, which cannot be split so, the other storm's whole
field, which also carries that storm's own low (at its position and depth) and so reads as a
different storm position and intensity as well as a different environment.

On synthetic data the generator is forked with the same swap (same state, same innovations,
the same partner's environment: :func:`mdcli.data.synth_tc.forked_response`), which gives
the true response of the same windows. Reported: per variable and summary, the correlation over
windows of the teacher's and the generator's responses; the response strength (RMS response
over the RMS one-step change of that summary in the true frames); and the AUROC of the
strengths against the generator's structural links (which variables drive which summary).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mdcli.data.synth_tc import VARIABLES
from mdcli.forecast.config import SamplingConfig
from mdcli.forecast.forecasters import Forecaster
from mdcli.forecast.heldout import HeldOut
from mdcli.forecast.sampling import sample_forecasts
from mdcli.forecast.skill import summaries_of

SUMMARIES = ("center", "coldness", "cloudy_area")
RESPONSE_NAMES = {"center": "motion", "coldness": "coldness", "cloudy_area": "cloudy_area"}


def swapped_era5(held: HeldOut, variable: int, steps: str = "all") -> torch.Tensor:
    """The windows' ERA5 with ``variable`` from the other storm at the same time: its
    environment with the window's own storm part where known (synthetic data), else its
    whole field; at every ERA5 step (``steps="all"``) or at the last only (``"last"``)."""
    era5 = held.era5.clone()
    source = held.era5_other if held.era5_swap is None else held.era5_swap
    when = slice(None) if steps == "all" else slice(-1, None)
    era5[:, variable, when] = source[:, variable, when]
    return era5


def first_frame_summaries(frames: torch.Tensor, held: HeldOut) -> dict[str, np.ndarray]:
    """Summaries of the first predicted frame of ``[N, P, H, W]``: ``[N]`` or ``[N, 2]``."""
    return {k: v[:, 0] for k, v in summaries_of(frames[:, :1], held.pixel_km).items()}


@torch.no_grad()
def teacher_responses(teacher: Forecaster, held: HeldOut, objective, sampling: SamplingConfig,
                      device: torch.device, seeds: list[int],
                      bases: list[torch.Tensor] | None = None, batch_size: int = 32,
                      steps: str = "all") -> dict[str, dict[str, np.ndarray]]:
    """``{variable: {summary: response [N] or [N, 2]}}``, averaged over one sample pair per
    seed in ``seeds`` (the average removes the part of a single pair's difference that is
    sampling noise, not response); ``bases[i]`` are the teacher's samples with the true ERA5
    drawn with ``seeds[i]``, where already at hand (the evaluation's ensemble members);
    ``steps``: the ERA5 steps swapped (:func:`swapped_era5`)."""
    models = {v: teacher for v in VARIABLES}
    era5 = {v: swapped_era5(held, i, steps) for i, v in enumerate(VARIABLES)}
    total: dict[str, dict[str, np.ndarray]] = {}
    for i, seed in enumerate(seeds):
        if bases is not None and i < len(bases):
            base = bases[i]
        else:
            base = sample_forecasts({"teacher": teacher}, held, objective, sampling, device,
                                    seed, batch_size)["teacher"]
        frames = sample_forecasts(models, held, objective, sampling, device, seed, batch_size,
                                  era5)
        ref = first_frame_summaries(base, held)
        for v in VARIABLES:
            got = first_frame_summaries(frames[v], held)
            for k in SUMMARIES:
                total.setdefault(v, {})[k] = total.get(v, {}).get(k, 0.0) + got[k] - ref[k]
    return {v: {k: d / len(seeds) for k, d in per.items()} for v, per in total.items()}


def one_step_scale(held: HeldOut) -> dict[str, float]:
    """RMS one-step change of each summary in the true frames (last condition frame to the
    first target frame): the unit of the response strength."""
    last = summaries_of(held.cond[:, -1:], held.pixel_km)
    nxt = summaries_of(held.target[:, :1], held.pixel_km)
    return {k: float(np.sqrt(np.mean((nxt[k][:, 0] - last[k][:, 0]) ** 2)) + 1e-12)
            for k in SUMMARIES}


def strengths(responses: dict[str, dict[str, np.ndarray]], scale: dict[str, float]
              ) -> np.ndarray:
    """``[V, 3]`` RMS response over the one-step scale of each summary."""
    return np.array([[np.sqrt(np.mean(responses[v][k] ** 2)) / scale[k] for k in SUMMARIES]
                     for v in VARIABLES])


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a true link scores above a non-link (ties
    count half). NaN when either class is empty."""
    scores, labels = np.asarray(scores, float).ravel(), np.asarray(labels, bool).ravel()
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation over windows (both components pooled for a centre)."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def generator_responses(held: HeldOut, attrs: dict) -> dict[str, dict[str, np.ndarray]] | None:
    """The generator's forked response of the same windows and partner storms, or None when
    the file was not made by ``mdcli data synth-tc``."""
    from mdcli.data.synth_tc import forked_response, synth_config

    if "config" not in attrs or "causal_links" not in attrs:
        return None
    cfg = synth_config(attrs)
    partner = np.arange(cfg.n_storms)
    partner[held.storm.numpy()] = held.partner.numpy()
    forked = forked_response(cfg, partner)
    s, t = held.storm.numpy(), held.time.numpy() - 1  # fork at t drives frame t + 1
    base = forked["base"]
    return {v: {k: np.asarray(forked["swap"][v][k])[s, t] - np.asarray(base[k])[s, t]
                for k in SUMMARIES} for v in VARIABLES}


def structural_support(causal_links: dict) -> np.ndarray | None:
    """``[V, 3]`` 0/1: which variables drive which summary in the generator's equations."""
    links = causal_links.get("summary_links")
    if not links:
        return None
    return np.array([[float(links["support"][v][RESPONSE_NAMES[k]]) for k in SUMMARIES]
                     for v in VARIABLES])


def response_report(responses: dict, held: HeldOut, attrs: dict, causal_links: dict,
                    steps: str = "all") -> dict[str, Any]:
    """Strengths, the strongest driver of each summary and, on synthetic data, the per-link
    correlation with the generator's response and the AUROC against its links."""
    scale = one_step_scale(held)
    strength = strengths(responses, scale)
    report: dict[str, Any] = {
        "summaries": [RESPONSE_NAMES[k] for k in SUMMARIES], "variables": list(VARIABLES),
        "strength": strength.round(5).tolist(),
        "strength_meaning": "RMS change of the summary of the first sampled frame when the "
                            "variable is swapped for another storm's at the same time, over "
                            "the RMS one-step change of that summary in the true frames",
        "swap": ("whole field" if held.era5_swap is None
                 else "environment, the storm's own part kept"),
        "swap_steps": steps,
        "strongest_driver": {RESPONSE_NAMES[k]: VARIABLES[int(np.argmax(strength[:, j]))]
                             for j, k in enumerate(SUMMARIES)},
        "one_step_scale": {RESPONSE_NAMES[k]: v for k, v in scale.items()},
    }
    truth = generator_responses(held, attrs)
    if truth is not None:
        report["generator_strength"] = strengths(truth, scale).round(5).tolist()
        report["correlation_with_generator"] = {
            v: {RESPONSE_NAMES[k]: correlation(responses[v][k], truth[v][k]) for k in SUMMARIES}
            for v in VARIABLES}
    support = structural_support(causal_links)
    if support is not None:
        report["support"] = support.astype(int).tolist()
        report["auroc"] = auroc(strength, support > 0)
        report["auroc_by_summary"] = {RESPONSE_NAMES[k]: auroc(strength[:, j], support[:, j] > 0)
                                      for j, k in enumerate(SUMMARIES)}
    return report
