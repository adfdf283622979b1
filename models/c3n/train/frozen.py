"""Train C3N's decoder over a frozen pretrained backbone, from the feature cache (:mod:`c3n.train.featcache`).

Why frozen: C3IM's visual distribution and CCAM's Grad-CAM weights come from the ImageNet head on
top of the backbone. Fine-tuning the backbone under that fixed head (the first shipped model) made
the head's output meaningless — its top-1 collapsed to a few classes — so the unified label and the
CAM stopped carrying information (models/README.md). With MobileNetV2 and its head frozen, both
keep their pretrained meaning, and the frozen part can be computed once per clip: a training step
costs only CCAM's re-weighting and the decoder (≈ 1/3 of the full model's step).

Recipe: Adam (lr ``--lr``, default 3e-4, cosine decay to 10 % over ``--max-steps``), BCE + Dice
(1:1, :func:`c3n.train.finetune.bce_dice_loss`) on every frame with a GT mask (composites: all five, empty
masks included), batch ``--batch-clips`` clips of T = 5 drawn at random from S4 + MS3 training
clips, MS3 clips drawn with weight ``--ms3-weight`` and clips whose GT is empty in every frame with
``--empty-weight`` (both relative to an S4 clip with a sounding object). Validation mIoU (S4 and MS3 validation clips,
all of them, from the cache) every ``--eval-every`` steps; ``best.pt`` keeps the best mean of the
S4 and MS3 mIoU. Training stops at ``--max-steps``, at ``--time-budget-min`` of this invocation, or
when validation has not improved for ``--patience`` evaluations.

Resumable: ``OUT/last.pt`` holds decoder, optimiser, step, RNG state and the validation history;
``--resume`` continues it (across sessions). ``OUT/history.json`` and ``OUT/log.jsonl`` record the
curve. Checkpoints hold only the decoder (``frozen_backbone: true``; the backbone and YAMNet are the pretrained weights
that :func:`c3n.model.build.build_model` fetches), which it and ``python -m c3n.export --checkpoint`` read.

Training clips are every cached part ``{s4,ms3}_train*`` (a cache can grow between resumed runs).

Off-screen signal (issue 26, docs/negative-audio.md): with ``--inview-weight`` > 0 the model gets the
``in_view`` head (:mod:`c3n.model.inview`), trained with BCE (weight ``--inview-weight``) beside the
mask loss; its target is 1 on a frame whose GT mask is non-empty, else 0. ``--neg-share`` of each
batch's clips (stochastically rounded) are audio-visual correspondence negatives from a format-2
cache (:meth:`c3n.train.featcache.CachedSplit.negative_batch`): a clip's frames with a partner's
audio, target an empty mask and ``in_view`` 0. Validation then also scores each validation clip with
its first partner's audio ("swapped") and reports the ``in_view`` ROC AUC (clip score = mean of its
frames' probabilities) of on-screen clips against off-screen ∪ swapped, and against each of
off-screen, swapped, silent and noise-floor clips alone; ``--select miou_auc`` (the default with the
head) keeps ``best.pt`` by mean mIoU + mean AUC.

Example: ``python -m c3n.train_frozen build/featcache/avsc2 --out build/runs/frozen-c3n-s1 --seed 1``
(``--no-ccam`` for the TPAVI-only ablation: the same cached maps, without CCAM's re-weighting).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..eval.metrics import AvsMetrics, false_alarm, roc_auc
from ..model.build import build_model
from .featcache import CachedSplit, T
from .finetune import bce_dice_loss

KINDS = ("offscreen", "swapped", "silent", "noise")  # negatives the in_view AUC is reported against


def ccam_from_weights(stage: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """CCAM re-weighting of a stage map [N,C,H,W] from its Grad-CAM channel weights [N,C].

    Identical to :func:`c3n.model.network.ccam` with ``w = grad.mean(hw)``: ``F' = F * sigmoid(w/|w|_2)``,
    ``F'' = F' * sigmoid(mean_c F')``.
    """
    w = w[:, :, None, None]
    w = w / torch.clamp(torch.sqrt((w * w).sum(dim=1, keepdim=True)), min=1e-12)
    f1 = stage * torch.sigmoid(w)
    return f1 * torch.sigmoid(f1.mean(dim=1, keepdim=True))


def decode(model, batch: dict, use_ccam: bool) -> torch.Tensor:
    """Mask logits [B*T,1,224,224] of a cached batch (:meth:`CachedSplit.batch`)."""
    return decode_all(model, batch, use_ccam)[0]


def decode_all(model, batch: dict, use_ccam: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(mask logits [B*T,1,224,224], ``in_view`` logits [B*T] or None without the head)."""
    stages = batch["stages"]
    if use_ccam:
        stages = [ccam_from_weights(s, w) for s, w in zip(stages, batch["cams"])]
    if model.in_view is None:
        return model.decoder(stages, batch["emb"], T), None
    mask, deep = model.decoder(stages, batch["emb"], T, return_deep=True)
    return mask, model.in_view(deep, batch["emb"])


def cat_batches(parts: list[dict]) -> dict:
    """Concatenate cached batches (:meth:`CachedSplit.batch` / ``negative_batch``) frame-wise."""
    return {"stages": [torch.cat([p["stages"][k] for p in parts]) for k in range(4)],
            "cams": [torch.cat([p["cams"][k] for p in parts]) for k in range(4)],
            **{k: torch.cat([p[k] for p in parts]) for k in ("emb", "masks", "valid", "in_view")}}


def inview_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """BCE of ``in_view`` logits [N] against targets [N] over the frames with ``valid`` > 0.5."""
    keep = valid > 0.5
    if not bool(keep.any()):
        return logits.sum() * 0.0
    return torch.nn.functional.binary_cross_entropy_with_logits(logits[keep], target[keep])


@torch.no_grad()
def validate(model, splits: list[CachedSplit], use_ccam: bool, chunk: int = 4,
             silenced: dict | None = None) -> dict:
    """AVSBench mIoU / F per subset over whole cached splits, plus the false-alarm rate (see
    :func:`false_alarm`) on the clips whose GT is empty in every frame (``false_alarm_clips``: their
    indices in the split where a region was reported).

    ``silenced`` maps a split's folder to a bool array [n, T] of frames that predict nothing (a
    silence gate, :func:`c3n.train.eval_cached.gate_frames`); their logits are set to -100."""
    model.decoder.eval()
    out = {}
    for sp in splits:
        m = AvsMetrics()
        fa, alarm_clips = [], []  # alarm_clips: indices of the empty-GT clips with a false region
        off = None if silenced is None else silenced.get(sp.folder)
        for s in range(0, len(sp), chunk):
            idx = list(range(s, min(len(sp), s + chunk)))
            b = sp.batch(idx)
            logits = decode(model, b, use_ccam)
            if off is not None:
                logits[torch.from_numpy(np.asarray(off[idx]).reshape(-1))] = -100.0
            m.update(logits, b["masks"], valid=b["valid"], frames_per_clip=T)
            gt_empty = b["masks"].reshape(len(idx), -1).amax(dim=1) == 0
            for k in range(len(idx)):
                if gt_empty[k]:
                    fa.append(false_alarm(logits[k * T:(k + 1) * T]))
                    if fa[-1]:
                        alarm_clips.append(idx[k])
        r = m.summary()
        out[sp.subset] = {"miou": r["miou"], "fscore": r["fscore"], "clips": r["clips"],
                          "empty_clips": len(fa), "false_alarm": float(np.mean(fa)) if fa else 0.0,
                          "false_alarm_clips": alarm_clips, **_swapped_and_inview(model, sp, use_ccam, chunk)}
    model.decoder.train()
    return out


def _swapped_and_inview(model, sp: CachedSplit, use_ccam: bool, chunk: int) -> dict:
    """Validation on swapped pairs (each clip with its first partner's audio, format-2 caches) and
    the ``in_view`` ROC AUCs (model with the head); see the module doc."""
    out: dict = {}
    kinds = sp.kinds()
    if kinds is None:  # no clips.csv: on screen = GT non-empty somewhere in the clip
        kinds = ["onscreen" if np.asarray(sp.a["masks"][i]).any() else "offscreen" for i in range(len(sp))]
    with_neg = [i for i in range(len(sp)) if sp.neg_k and int(sp.a["neg_index"][i, 0]) >= 0]
    score = {"clip": np.full(len(sp), np.nan), "swapped": []}
    swapped_alarms = []
    for s in range(0, len(sp), chunk):
        idx = list(range(s, min(len(sp), s + chunk)))
        if model.in_view is not None:
            _, iv = decode_all(model, sp.batch(idx), use_ccam)
            score["clip"][idx] = torch.sigmoid(iv).reshape(len(idx), T).mean(dim=1).numpy()
    for s in range(0, len(with_neg), chunk):
        idx = with_neg[s:s + chunk]
        logits, iv = decode_all(model, sp.negative_batch(idx, [0] * len(idx)), use_ccam)
        swapped_alarms += [false_alarm(logits[k * T:(k + 1) * T]) for k in range(len(idx))]
        if iv is not None:
            score["swapped"] += torch.sigmoid(iv).reshape(len(idx), T).mean(dim=1).tolist()
    if with_neg:
        out["swapped_clips"] = len(with_neg)
        out["false_alarm_swapped"] = float(np.mean(swapped_alarms))
    if model.in_view is not None:
        kinds_a = np.asarray(kinds)
        pos = score["clip"][kinds_a == "onscreen"]
        groups = {k: (score["swapped"] if k == "swapped" else score["clip"][kinds_a == k]) for k in KINDS}
        out["inview_auc"] = roc_auc(pos, np.concatenate([np.asarray(groups["offscreen"]),
                                                         np.asarray(groups["swapped"])]))
        for k in KINDS:
            out[f"inview_auc_{k}"] = roc_auc(pos, groups[k])
        out["inview_mean_onscreen"] = float(np.mean(pos)) if len(pos) else None
    return out


def sample_batch(train: list[CachedSplit], owners: np.ndarray, local: np.ndarray, weights: np.ndarray,
                 neg_weights: np.ndarray, clips: int, neg_share: float, rng: np.random.Generator) -> dict:
    """One training batch of ``clips`` clips: ``neg_share * clips`` of them (stochastically
    rounded) swapped pairs (an anchor drawn by ``neg_weights``, a partner k uniform), the rest clips
    drawn by ``weights`` (without replacement); ``owners`` / ``local`` map the global clip index to
    (part, clip in part)."""
    x = neg_share * clips
    n_neg = min(clips, int(x) + int(rng.random() < x - int(x)))
    parts = []
    if clips - n_neg:
        pick = rng.choice(len(owners), size=clips - n_neg, replace=False, p=weights)
        parts += [train[owners[i]].batch([local[i]]) for i in pick]
    for i in (rng.choice(len(owners), size=n_neg, replace=True, p=neg_weights) if n_neg else []):
        sp = train[owners[i]]
        parts.append(sp.negative_batch([local[i]], [int(rng.integers(sp.neg_k))]))
    return cat_batches(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train C3N's decoder on cached frozen features (resumable).")
    ap.add_argument("cache", type=Path, help="folder of python -m c3n.featcache (s4_train, ms3_train, s4_val, ...)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--config", default="edge", choices=["edge", "paper"])
    ap.add_argument("--no-ccam", action="store_true", help="ablation: TPAVI-only (no CCAM re-weighting)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--batch-clips", type=int, default=4)
    ap.add_argument("--ms3-weight", type=float, default=1.0, help="sampling weight of an MS3 clip vs an S4 clip")
    ap.add_argument("--empty-weight", type=float, default=1.0,
                    help="sampling weight of a clip whose GT is empty in every frame (off-screen sound, silence)")
    ap.add_argument("--max-steps", type=int, default=20000)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--patience", type=int, default=8, help="evaluations without improvement before stopping")
    ap.add_argument("--neg-share", type=float, default=0.0,
                    help="share of each batch's clips that are swapped audio-visual negatives (format-2 cache)")
    ap.add_argument("--inview-weight", type=float, default=0.0,
                    help="weight of the in_view BCE beside the mask loss; > 0 adds the in_view head")
    ap.add_argument("--select", choices=["miou", "miou_auc"], default=None,
                    help="best.pt by mean val mIoU, or mean mIoU + mean in_view AUC (default with the head)")
    ap.add_argument("--time-budget-min", type=float, default=None, help="stop this invocation after N minutes")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    use_ccam = not a.no_ccam
    a.out.mkdir(parents=True, exist_ok=True)

    # every part of a training split: s4_train, s4_train_b, ... (c3n.featcache --suffix)
    train = [CachedSplit(p) for s in ("s4", "ms3") for p in sorted(a.cache.glob(f"{s}_train*"))
             if (p / "meta.json").exists()]
    val = [CachedSplit(a.cache / f"{s}_val") for s in ("s4", "ms3") if (a.cache / f"{s}_val").exists()]
    if not train or not val:
        raise SystemExit(f"error: {a.cache} lacks *_train or *_val caches (python -m c3n.featcache)")
    # sampling: one global index over (split, clip) with per-subset weights
    owners = np.concatenate([np.full(len(sp), k) for k, sp in enumerate(train)])
    local = np.concatenate([np.arange(len(sp)) for sp in train])
    weights = np.concatenate([np.full(len(sp), a.ms3_weight if sp.subset == "ms3" else 1.0) for sp in train])
    if a.empty_weight != 1.0:  # clips whose GT is empty in every frame (silent, noise floor, off screen)
        empty = np.concatenate([np.asarray(sp.a["masks"]).reshape(len(sp), -1).max(axis=1) == 0 for sp in train])
        weights = np.where(empty, weights * a.empty_weight, weights)
        print(f"{int(empty.sum())} of {len(empty)} training clips have empty masks: weight x{a.empty_weight}",
              file=sys.stderr)
    weights /= weights.sum()
    # swapped pairs: anchors with a negative partner, drawn with the same weights
    has_neg = np.concatenate([(np.asarray(sp.a["neg_index"])[:, 0] >= 0) if sp.neg_k else np.zeros(len(sp), bool)
                              for sp in train])
    if a.neg_share > 0 and not has_neg.any():
        raise SystemExit(f"error: --neg-share needs a format-2 cache with negatives ({a.cache})")
    neg_weights = np.where(has_neg, weights, 0.0)
    neg_weights = neg_weights / neg_weights.sum() if has_neg.any() else neg_weights
    select = a.select or ("miou_auc" if a.inview_weight > 0 else "miou")

    model = build_model(a.config, use_ccam=use_ccam, seed=a.seed, in_view=a.inview_weight > 0)
    model.eval()
    model.decoder.train()
    params = list(model.decoder.parameters())
    if model.in_view is not None:
        model.in_view.train()
        params += list(model.in_view.parameters())
    opt = torch.optim.Adam(params, lr=a.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / a.max_steps))))
    rng = np.random.default_rng(a.seed)
    step, best, history, bad_evals, elapsed_before = 0, -1.0, [], 0, 0.0
    last = a.out / "last.pt"
    if a.resume and last.exists():
        ck = torch.load(last, map_location="cpu", weights_only=False)
        if "decoder" in ck:  # checkpoints of the first version of this script
            model.decoder.load_state_dict(ck["decoder"])
        else:
            model.load_state_dict(ck["model"], strict=False)
            want = {k for k in model.state_dict() if k.startswith(("decoder.", "in_view."))}
            if set(ck["model"]) != want:
                raise SystemExit(f"error: {last} does not match this model (--inview-weight > 0 adds the head)")
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        step, best, history, bad_evals = ck["step"], ck["best"], ck["history"], ck["bad_evals"]
        elapsed_before = ck["elapsed_s"]
        rng.bit_generator.state = ck["np_rng"]
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed {last} at step {step}, best {best:.4f}", file=sys.stderr)

    def save(path: Path, extra: dict) -> None:
        # the decoder only: backbone and YAMNet are the pretrained, fetched weights (build_model)
        state = {k: v for k, v in model.state_dict().items() if k.startswith(("decoder.", "in_view."))}
        ck = {"model": state, "config": a.config, "use_ccam": use_ccam, "frozen_backbone": True, "step": step,
              "best": best, "history": history, "args": {k: str(v) for k, v in vars(a).items()}, **extra}
        tmp = path.with_suffix(".tmp")
        torch.save(ck, tmp)
        tmp.replace(path)

    def checkpoint(el: float) -> None:
        save(last, {"optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "bad_evals": bad_evals, "elapsed_s": el,
                    "np_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()})

    budget = a.time_budget_min * 60 if a.time_budget_min else math.inf
    t_start = time.time()
    step0 = step
    ema = None
    log = open(a.out / "log.jsonl", "a")
    while step < a.max_steps and bad_evals < a.patience:
        batch = sample_batch(train, owners, local, weights, neg_weights, a.batch_clips, a.neg_share, rng)
        logits, iv = decode_all(model, batch, use_ccam)
        loss = bce_dice_loss(logits, batch["masks"], batch["valid"])
        if iv is not None:
            loss = loss + a.inview_weight * inview_loss(iv, batch["in_view"], batch["valid"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        el_run = time.time() - t_start
        if step % 25 == 0:
            print(f"step {step} loss {ema:.4f} lr {sched.get_last_lr()[0]:.2e} "
                  f"{el_run / max(1, step - step0):.2f} s/step", file=sys.stderr)
        if step % a.eval_every == 0 or step >= a.max_steps or el_run >= budget:
            v = validate(model, val, use_ccam)
            score = float(np.mean([v[s]["miou"] for s in v]))
            if select == "miou_auc":
                score += float(np.mean([v[s].get("inview_auc") or 0.0 for s in v]))
            rec = {"step": step, "elapsed_s": round(elapsed_before + el_run), "train_loss_ema": ema,
                   "val_score": score, **{f"{s}_{k}": x for s in v for k, x in v[s].items()}}
            history.append(rec)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), file=sys.stderr)
            if score > best + 1e-4:
                best, bad_evals = score, 0
                save(a.out / "best.pt", {})
            else:
                bad_evals += 1
            checkpoint(elapsed_before + el_run)
            (a.out / "history.json").write_text(json.dumps(history, indent=1))
            if el_run >= budget:
                break
    why = "max steps" if step >= a.max_steps else ("patience" if bad_evals >= a.patience else "time budget")
    print(f"stopped ({why}) at step {step}; best val score {best:.4f} -> {a.out / 'best.pt'}", file=sys.stderr)
    (a.out / "status.json").write_text(json.dumps({"step": step, "best": best, "stopped": why,
                                                   "converged": why == "patience"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
