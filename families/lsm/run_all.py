"""One command: train the reference LSM on digits, compile it for every target, print a JSON summary.

    .venv/bin/python -m neurodeploy.families.lsm.run_all [--quick] [--out out/lsm_digits]

Steps (each figure in the summary names the network state it was measured on):

1. ``load_digits`` as regular-rate spike trains (:mod:`.encoding`); a 6 x 6 x 6 reservoir (:mod:`.model`).
2. Host readout on the *initial* float reservoir (``accuracy.float_initial``), branching factor ``before``
   (``Config.initial = False`` skips this step).
3. NALSM-style unsupervised phase (:mod:`.plasticity`): astrocyte-modulated STDP on the training stimuli, weights
   then frozen. Float IR accuracy of the frozen reservoir (``float``), branching factor ``after``; NALSM's plastic
   inference (STDP running during every sample, weights restored at each start) on the host float simulator
   (``plastic_float``, the astrocyte's credit estimator) and with the on-chip astrocyte's count estimator
   (``plastic_float_counts``: the float twin of step 4b).
4. The frozen graph compiled for ``loihi2`` (calibration: the first training samples). Its integer reservoir runs
   on the emulator; the readout is *retrained on these quantized states* (``emulator``) -- the float readout applied
   to them unchanged is reported too (``emulator_with_float_readout``), to show why retraining is needed.
4b. The plastic NALSM in integers (:mod:`.plastic_emulator`): the loihi2 graph with its excitatory recurrent
   synapses as PlasticDense ops (delays, Loihi 2 STDP, third factor y2) and an Astrocyte controller, run on the
   emulator with per-sample weights restored at every sample start; readout retrained on its states
   (``plastic_emulator``), branching factor ``plastic_emulator_run``. Lava 0.10 cannot run it (no learning process
   with delays), so this model runs on the emulator only.
5. On-chip readout (compile option ``readout="chip"``): the retrained readout folded into LI integrator neurons,
   recompiled; its argmax of v after the last step (``chip_readout``).
6. Lava (Loihi 2 bit-accurate models) on a subset of test samples: reservoir spikes and readout v compared bit
   for bit with the emulator; accuracy of the same readout on Lava's spikes.
7. ``spinnaker``: the emitted PyNN script on pyNN.brian2 on a subset; agreement with the integer emulator and the
   accuracy of the readout trained on the spinnaker artifact's emulator states applied to Brian2's spikes.
8. Core/chip counts (Loihi 2 partition pass, SpiNNaker mapping report) and latencies.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import branching, deploy, encoding, plastic_emulator, plasticity, readout
from .connectivity import ReservoirSpec
from .model import LSM, InputSpec, NeuronSpec, build


@dataclass
class Config:
    """Every constant of the example (defaults: the figures in the README and RESULTS.md)."""

    steps: int = 60
    max_rate: float = 0.5
    reservoir: ReservoirSpec = field(default_factory=lambda: ReservoirSpec(
        grid=(6, 6, 6), lam=3.0, weights={"EE": 0.1, "EI": 0.2, "IE": 0.2, "II": 0.2}))
    inputs: InputSpec = field(default_factory=lambda: InputSpec(p=0.2, weight=0.05))
    neuron: NeuronSpec = field(default_factory=NeuronSpec)
    plasticity: plasticity.PlasticitySpec = field(default_factory=lambda: plasticity.PlasticitySpec(epochs=2))
    readout_method: str = "logistic"
    readout_alpha: float = 1.0
    calibration: int = 32
    lava_samples: int = 20
    pynn_samples: int = 50
    plastic: bool = True
    initial: bool = True       # step 2 (readout and branching factor of the initial, untrained reservoir)
    seed: int = 0


def sigma(lsm: LSM, spikes: np.ndarray, x: np.ndarray) -> float:
    """The synaptic branching factor of a run, input spikes sharing the credit (:mod:`.branching`)."""
    c = lsm.conn
    return branching.branching_factor(spikes, c.pre, c.post, c.delay, c.weight, x, lsm.w_in_col, lsm.w_in_row,
                                      lsm.w_in_value)


def _fit(cfg: Config, s_train: np.ndarray, y: np.ndarray) -> readout.Readout:
    return readout.fit(readout.spike_features(s_train), y, cfg.readout_method, cfg.readout_alpha)


def _acc(ro: readout.Readout, spikes: np.ndarray, y: np.ndarray) -> float:
    return round(ro.accuracy(readout.spike_features(spikes), y), 4)


def run(cfg: Config, log=print) -> dict[str, Any]:
    """Run every step of the module docstring; return the summary (JSON-able)."""
    t_all = time.perf_counter()
    timings: dict[str, float] = {}

    def tick(name: str, start: float) -> None:
        timings[name] = round(time.perf_counter() - start, 2)
        log(f"[lsm] {name}: {timings[name]} s")

    start = time.perf_counter()
    task = encoding.load_task(cfg.steps, cfg.max_rate, seed=cfg.seed)
    lsm0 = build(cfg.reservoir, cfg.inputs, cfg.neuron)
    y_tr, y_te = task.y_train, task.y_test
    tick("encode + build", start)

    acc: dict[str, Any] = {}
    bf: dict[str, Any] = {}
    if cfg.initial:
        start = time.perf_counter()
        s0_tr = deploy.reservoir_spikes(lsm0.graph(), task.x_train)
        s0_te = deploy.reservoir_spikes(lsm0.graph(), task.x_test)
        ro0 = _fit(cfg, s0_tr, y_tr)
        acc["float_initial"] = _acc(ro0, s0_te, y_te)
        bf.update({"before": round(sigma(lsm0, s0_te, task.x_test), 4),
                   "population_before": round(branching.population_branching(s0_te), 4)})
        tick("initial reservoir (float) + readout", start)

    start = time.perf_counter()
    lsm, astro, train_log = plasticity.train(lsm0, task.x_train, cfg.plasticity)
    tick("unsupervised phase (astrocyte-modulated STDP)", start)
    start = time.perf_counter()
    graph = lsm.graph()
    s_tr = deploy.reservoir_spikes(graph, task.x_train)
    s_te = deploy.reservoir_spikes(graph, task.x_test)
    ro_float = _fit(cfg, s_tr, y_tr)
    acc["float"] = _acc(ro_float, s_te, y_te)
    bf.update({"after": round(sigma(lsm, s_te, task.x_test), 4),
               "population_after": round(branching.population_branching(s_te), 4),
               "astrocyte_estimate_final": round(float(astro.sigma[0]), 4), "target": cfg.plasticity.target,
               "ltd_modulation_final": round(float(np.exp(astro.log_m[0])), 4),
               "mean_plastic_weight_before": round(float(lsm0.conn.weight[lsm0.conn.excitatory[lsm0.conn.pre]]
                                                         .mean()), 5),
               "mean_plastic_weight_after": round(float(lsm.conn.weight[lsm.conn.excitatory[lsm.conn.pre]].mean()),
                                                  5)})
    tick("frozen reservoir (float) + readout", start)

    if cfg.plastic:
        start = time.perf_counter()
        p_tr = plasticity.run_plastic(lsm, task.x_train, cfg.plasticity, astro)
        p_te = plasticity.run_plastic(lsm, task.x_test, cfg.plasticity, astro)
        acc["plastic_float"] = _acc(_fit(cfg, p_tr, y_tr), p_te, y_te)
        bf["plastic_run"] = round(sigma(lsm, p_te, task.x_test), 4)
        counts_spec = replace(cfg.plasticity, astrocyte="counts")
        c_tr = plasticity.run_plastic(lsm, task.x_train, counts_spec)
        c_te = plasticity.run_plastic(lsm, task.x_test, counts_spec)
        acc["plastic_float_counts"] = _acc(_fit(cfg, c_tr, y_tr), c_te, y_te)
        bf["plastic_float_counts_run"] = round(sigma(lsm, c_te, task.x_test), 4)
        tick("plastic inference (host float simulator)", start)

    start = time.perf_counter()
    calib = task.x_train[: cfg.calibration]
    arts, compile_info = deploy.compile_targets(graph, calib)
    tick("compile loihi2 + spinnaker", start)

    start = time.perf_counter()
    loihi = arts["loihi2"]
    q_tr = deploy.reservoir_spikes(loihi.graph, task.x_train)
    q_te = deploy.reservoir_spikes(loihi.graph, task.x_test)
    ro_q = _fit(cfg, q_tr, y_tr)
    acc["emulator"] = _acc(ro_q, q_te, y_te)
    acc["emulator_with_float_readout"] = _acc(ro_float, q_te, y_te)
    float_vs_int = {"spike_bins_equal": round(float(np.mean((s_te != 0) == (q_te != 0))), 4),
                    "count_correlation": round(float(np.corrcoef(s_te.sum(1).ravel(), q_te.sum(1).ravel())[0, 1]), 4),
                    "rate_float": round(float(s_te.mean()), 4), "rate_int": round(float(q_te.mean()), 4)}
    tick("quantized emulator + retrained readout", start)

    plastic_summary: dict[str, Any] = {"run": False}
    if cfg.plastic:
        start = time.perf_counter()
        pgraph, info = plastic_emulator.plastic_graph(loihi.graph, lsm, cfg.plasticity)
        pe_tr = plastic_emulator.run(pgraph, task.x_train)
        pe_te = plastic_emulator.run(pgraph, task.x_test)
        acc["plastic_emulator"] = _acc(_fit(cfg, pe_tr.spikes, y_tr), pe_te.spikes, y_te)
        bf["plastic_emulator_run"] = round(sigma(lsm, pe_te.spikes, task.x_test), 4)
        y2, sig_hat = plastic_emulator.astrocyte_trace(pgraph, pe_te.spikes, task.x_test)
        plastic_summary = {"run": True, **plastic_emulator.summary(info, {"train": pe_tr, "test": pe_te}),
                           "astrocyte_test": {"y2_mean": round(float(y2.mean()), 3),
                                              "y2_final_mean": round(float(y2[:, -1].mean()), 3),
                                              "sigma_hat_final_mean": round(float(np.nanmean(sig_hat[:, -1])), 4)},
                           "float_counts_rate": round(float(c_te.mean()), 4),
                           "where": "emulator only (Lava 0.10 has no learning synapses with delays)"}
        tick("plastic NALSM on the emulator (PlasticDense + astrocyte)", start)

    start = time.perf_counter()
    w_fold, b_fold = ro_q.folded()
    chip_graph = lsm.graph(readout="chip", readout_weights=w_fold, readout_bias=b_fold, steps=cfg.steps)
    chip = deploy.compile_targets(chip_graph, calib, ("loihi2",))[0]["loihi2"]
    scores = deploy.run_emulator(chip.graph, task.x_test)["scores"]
    acc["chip_readout"] = round(float(np.mean(ro_q.classes[scores[:, -1].argmax(axis=1)] == y_te)), 4)
    same = deploy.same_reservoir(chip.graph, loihi.graph)
    tick("on-chip readout (compile + emulator)", start)

    lava_summary: dict[str, Any] = {"samples": 0}
    if cfg.lava_samples > 0:
        start = time.perf_counter()
        x_l, y_l = task.x_test[: cfg.lava_samples], y_te[: cfg.lava_samples]
        res = deploy.lava_check(chip, x_l)
        lava_spikes = np.asarray(res["arrays"]["reservoir_spikes"])
        lava_scores = np.asarray(res["arrays"]["scores"])
        lava_summary = {"samples": res["samples"], "bit_identical_to_emulator": res["identical"],
                        "equal_per_output": res["equal"],
                        "accuracy_host_readout": _acc(ro_q, lava_spikes, y_l),
                        "accuracy_chip_readout": round(float(np.mean(
                            ro_q.classes[lava_scores[:, -1].argmax(axis=1)] == y_l)), 4),
                        "emulator_accuracy_same_samples": _acc(ro_q, q_te[: cfg.lava_samples], y_l),
                        "seconds_per_sample": round(res["seconds_per_sample"], 2)}
        acc["lava"] = lava_summary["accuracy_host_readout"]
        tick(f"lava ({cfg.lava_samples} test samples)", start)

    spin = arts["spinnaker"]
    pynn_summary: dict[str, Any] = {"samples": 0}
    if cfg.pynn_samples > 0:
        start = time.perf_counter()
        same_q = deploy.same_reservoir(spin.graph, loihi.graph)
        if same_q:
            ro_s = ro_q
        else:
            ro_s = _fit(cfg, deploy.reservoir_spikes(spin.graph, task.x_train), y_tr)
        x_p, y_p = task.x_test[: cfg.pynn_samples], y_te[: cfg.pynn_samples]
        res = deploy.pynn_check(spin, x_p)
        pynn_summary = {"samples": res["samples"], "simulator": "pyNN.brian2 (dt = 1 ms)",
                        "same_integers_as_loihi2": same_q,
                        "accuracy": _acc(ro_s, res["spikes"], y_p),
                        "emulator_accuracy_same_samples": _acc(ro_s, res["emulator_spikes"], y_p),
                        "same_decision_as_emulator": round(float(np.mean(
                            ro_s.predict(readout.spike_features(res["spikes"])) ==
                            ro_s.predict(readout.spike_features(res["emulator_spikes"])))), 4),
                        "agreement": {k: (round(v, 4) if isinstance(v, float) else v)
                                      for k, v in res["agreement"].items()},
                        "seconds_per_sample": round(res["seconds"] / max(1, res["samples"]), 2)}
        acc["pynn_brian2"] = pynn_summary["accuracy"]
        tick(f"pyNN.brian2 ({cfg.pynn_samples} test samples)", start)

    start = time.perf_counter()
    mapping = {"loihi2": deploy.loihi_mapping(loihi), "loihi2_chip_readout": deploy.loihi_mapping(chip),
               "spinnaker": deploy.spinnaker_mapping(spin)}
    tick("mapping reports", start)
    c = lsm.conn
    summary = {
        "task": {"dataset": "sklearn load_digits (8x8, bundled)", "train": int(y_tr.size), "test": int(y_te.size),
                 "steps": cfg.steps, "dt_ms": 1.0, "encoding": f"regular rate, max {cfg.max_rate}/step"},
        "reservoir": {"neurons": c.n, "grid": list(cfg.reservoir.grid), "excitatory": int(c.excitatory.sum()),
                      "synapses": c.synapses, "synapses_per_neuron": round(c.synapses / c.n, 2),
                      "input_synapses": int(lsm.w_in_value.size), "lambda": cfg.reservoir.lam,
                      "delays_steps": [int(c.delay.min()), int(c.delay.max())]},
        "readout": {"where": "host (default); compile option readout='chip' = LI integrators",
                    "method": cfg.readout_method, "features": "reservoir spike counts over the run",
                    "deployed_readout_trained_on": "quantized emulator states of the loihi2 artifact"},
        "accuracy": acc,
        "float_vs_quantized_reservoir": float_vs_int,
        "branching_factor": bf,
        "plastic_emulator": plastic_summary,
        "lava": lava_summary,
        "pynn": pynn_summary,
        "chip_readout": {"reservoir_integers_unchanged": same, "accuracy_emulator": acc["chip_readout"]},
        "mapping": mapping,
        "latency": {"pipeline_steps_input_to_reservoir": loihi.manifest["latency_steps"].get("reservoir_spikes"),
                    "pipeline_steps_input_to_chip_readout": chip.manifest["latency_steps"].get("scores"),
                    "decision_after_steps": cfg.steps,
                    "decision_after_ms_real_time": cfg.steps * 1.0,
                    "note": "the readout decides after the whole stimulus (T steps); at 1 ms per step on SpiNNaker "
                            "(real time) that is T ms; Loihi 2 steps run faster than real time"},
        "compile_seconds": deploy.compile_seconds(compile_info),
        "timings_seconds": timings,
        "plasticity": {**asdict(cfg.plasticity), "sigma_hat_per_batch": [round(v, 4) for v in train_log.sigma_hat]},
    }
    summary["total_seconds"] = round(time.perf_counter() - t_all, 1)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 STDP epoch, 5 Lava and 10 Brian2 samples")
    parser.add_argument("--lava-samples", type=int, default=None)
    parser.add_argument("--pynn-samples", type=int, default=None)
    parser.add_argument("--no-plastic", action="store_true",
                        help="skip NALSM's plastic inference (float simulator and emulator)")
    parser.add_argument("--out", default="out/lsm_digits", help="directory for summary.json")
    args = parser.parse_args(argv)
    cfg = Config()
    if args.quick:
        cfg.lava_samples, cfg.pynn_samples = 5, 10
        cfg.plasticity = plasticity.PlasticitySpec(epochs=1)
    if args.lava_samples is not None:
        cfg.lava_samples = args.lava_samples
    if args.pynn_samples is not None:
        cfg.pynn_samples = args.pynn_samples
    cfg.plastic = not args.no_plastic
    summary = run(cfg, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=2, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))
    (out / "summary.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
