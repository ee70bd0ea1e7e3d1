"""HLOP on 5 split-digits tasks (issue 7): learn, deploy to three targets, learn on the chip model; one JSON summary.

    .venv/bin/python examples/hlop_digits/run.py [--setting class|task] [--lava-per-task N] [--pynn-per-task N]
                                                 [--no-deploy] [--no-onchip] [--seeds 0,1,2] [--passes 3]
                                                 [--further-epochs 30]

1. The task sequence: HLOP and plain fine-tuning (class-incremental, single 10-way head, by default; ``--setting
   task`` for multi-head task-incremental), ACC / BWT / R (:mod:`neurodeploy.families.hlop.learner`).
2. Deployment of the HLOP network (:mod:`neurodeploy.families.hlop.deploy`): the quantized emulator artifact
   (``hlop_emulator``), then ``targets``: the loihi2 artifact on the integer emulator and on Lava (fixed_pt, through
   ``.venv-lava``; must equal the emulator integer for integer), the spinnaker artifact on the emulator and as the
   emitted PyNN script on pyNN.brian2 -- per-task accuracies per run. ``--lava-per-task`` / ``--pynn-per-task``
   bound the digits per task (-1, the default: every test digit; 0 skips the backend).
3. On-chip learning (:mod:`neurodeploy.families.hlop.onchip`, class setting): Oja's subspace rule made local
   (:mod:`neurodeploy.families.hlop.oja`: residual populations, subspace neurons, H and the tied feedback F = -H^T
   learning the same integer product) beside the deployed integer network learns the last task's subspace in the
   emulator (the first ``--lava-digits`` digits of that stream also on Lava: weight, spike and tie agreement); the
   captured energy of the task's activity is compared with the float Oja subspace; then a permuted-pixel task is
   learned with the projected update and forgetting of the five tasks is measured on the integer emulator.
4. ``three_seeds``: step 3 (after the float HLOP sequence) for each of ``--seeds``, with the mean and spread of
   forgetting per variant (fine-tuning, old subspaces, + on-chip Oja subspace, + float Oja subspace) and of the
   captured energies (``--seeds ''`` skips it).

Measured (seed 0, 450 test digits, T = 10, 2 shared cores): see the README's HLOP subsection.
"""

from __future__ import annotations

import argparse
import json
import time

from neurodeploy.families.hlop.learner import HLOPConfig, run_sequence


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", choices=("class", "task"), default="class")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-deploy", action="store_true", help="skip deployment (items 2)")
    ap.add_argument("--no-onchip", action="store_true", help="skip on-chip learning (item 4)")
    ap.add_argument("--lava-per-task", type=int, default=-1, help="test digits per task on Lava (-1: all)")
    ap.add_argument("--pynn-per-task", type=int, default=-1, help="test digits per task on PyNN (-1: all)")
    ap.add_argument("--lava-digits", type=int, default=20, help="digits of the on-chip learning stream on Lava")
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the three-seed on-chip table ('' skips it)")
    ap.add_argument("--passes", type=int, default=3, help="passes of the on-chip learning stream")
    ap.add_argument("--further-epochs", type=int, default=30, help="epochs of the further (permuted) task")
    args = ap.parse_args()
    start = time.perf_counter()
    summary: dict = {"setting": args.setting, "seed": args.seed}
    data = None
    for method in ("finetune", "hlop"):
        cfg = HLOPConfig(method=method, setting=args.setting, seed=args.seed)
        out = run_sequence(cfg, data)
        data = out["data"]
        summary[method] = {k: out[k] for k in ("ACC", "BWT", "R", "subspace_sizes", "layer_widths",
                                               "orthonormality_error")}
        summary[method]["seconds"] = round(time.perf_counter() - start, 1)
    net, hlop_cfg = out["net"], cfg
    if not args.no_deploy:
        from neurodeploy.families.hlop.deploy import deploy_emulator, deploy_targets

        summary["hlop_emulator"] = deploy_emulator(net, data, hlop_cfg)
        summary["targets"] = deploy_targets(net, data, hlop_cfg, lava_per_task=args.lava_per_task,
                                            pynn_per_task=args.pynn_per_task)
        summary["targets"]["seconds"] = round(time.perf_counter() - start, 1)
    if not args.no_onchip and args.setting == "class":
        from neurodeploy.families.hlop.onchip import run_continual

        summary["onchip"] = run_continual(net, data, hlop_cfg, out["subspaces"], lava_digits=args.lava_digits,
                                          passes=args.passes, further_epochs=args.further_epochs, seed=args.seed)
        summary["onchip"]["seconds"] = round(time.perf_counter() - start, 1)
        if args.seeds:
            from neurodeploy.families.hlop.onchip import three_seeds

            seeds = tuple(int(s) for s in args.seeds.split(","))
            table = three_seeds(seeds, passes=args.passes, further_epochs=args.further_epochs)
            summary["onchip_seeds"] = {k: v for k, v in table.items() if k != "runs"}
            summary["onchip_seeds"]["seconds"] = round(time.perf_counter() - start, 1)
    summary["config"] = out["config"]
    summary["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
