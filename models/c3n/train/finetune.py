"""Train C3N on AVSBench-format data (real AVSBench or AVS-Composites), S4 and MS3 jointly.

Recipe (docs/c3n-method.md §9-10): Adam, lr 1e-4, no weight decay; loss BCE + Dice (1:1) on sigmoid
mask probabilities; S4 clips supervise the frames that have a ground-truth mask (train: the first
frame only), MS3 clips all five; per-clip horizontal flip and per-frame colour jitter
(``AvsClipDataset(augment=True)``); the audio branch is frozen, the visual backbone is fine-tuned
(BatchNorm statistics frozen, see :mod:`c3n.model.backbone`); model selection on validation mIoU.

The run is bounded by ``--epochs`` and/or ``--time-budget-min``; validation runs every
``--eval-every`` steps and at the end. Checkpoints: ``OUT/last.pt`` (resumable: model, optimiser,
step, RNG states) and ``OUT/best.pt`` (best validation mIoU). ``--resume`` continues ``last.pt``.

Example: ``python -m c3n.train DATA --config edge --out models/build/runs/edge --time-budget-min 45``
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, DataLoader, Subset
from tqdm import tqdm

from ..eval.metrics import AvsMetrics
from ..model.build import build_model


def bce_dice_loss(logits: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """BCE + Dice over the supervised frames. logits/masks [N,1,H,W], valid [N] in {0,1}.

    Dice = 1 - mean_frames[(2 * sum(p g) + 1) / (sum p + sum g + 1)] (docs/c3n-method.md §9).
    """
    keep = valid > 0.5
    if not bool(keep.any()):
        return logits.sum() * 0.0
    lg, gt = logits[keep], masks[keep]
    bce = F.binary_cross_entropy_with_logits(lg, gt)
    p = torch.sigmoid(lg).flatten(1)
    g = gt.flatten(1)
    dice = 1.0 - ((2.0 * (p * g).sum(1) + 1.0) / (p.sum(1) + g.sum(1) + 1.0)).mean()
    return bce + dice


def collate(batch: list[dict]) -> dict:
    out = {k: torch.cat([b[k] for b in batch]) for k in ("frames", "audio_logmel", "masks", "mask_valid")}
    out["t"] = batch[0]["frames"].shape[0]
    out["vid"] = [b["vid"] for b in batch]
    return out


def make_split(root: Path, split: str, augment: bool):
    from ..data.avsbench import AvsClipDataset

    parts = []
    for subset, folder in (("s4", "Single-source"), ("ms3", "Multi-sources")):
        if (root / folder).exists():
            parts.append(AvsClipDataset(root, subset=subset, split=split, augment=augment))
    if not parts:
        raise SystemExit(f"error: {root} has neither Single-source/ nor Multi-sources/ (AVSBench layout)")
    return ConcatDataset(parts)


@torch.no_grad()
def evaluate(model, dataset, device, desc="val") -> dict:
    model.eval()
    m = AvsMetrics()
    for i in tqdm(range(len(dataset)), desc=desc, leave=False, file=sys.stderr):
        item = dataset[i]
        mask = model(item["frames"].to(device), item["audio_logmel"].to(device), t=item["frames"].shape[0])[0]
        m.update(mask.cpu(), item["masks"], frames_per_clip=item["frames"].shape[0])
    model.train()
    return m.summary()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m c3n.train",
                                 description="Train C3N (S4 + MS3 jointly) on an AVSBench-format folder.")
    ap.add_argument("data", type=Path, help="folder with Single-source/ and/or Multi-sources/")
    ap.add_argument("--config", default="edge", choices=["edge", "paper"])
    ap.add_argument("--no-ccam", action="store_true", help="ablation: TPAVI-only baseline (no C3IM/CCAM attention)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--time-budget-min", type=float, default=None, help="stop after this many minutes")
    ap.add_argument("--batch-clips", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--eval-every", type=int, default=200, help="steps between validations")
    ap.add_argument("--val-clips", type=int, default=40, help="validation clips used for model selection (0 = all)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args(argv)

    if a.threads:
        torch.set_num_threads(a.threads)
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    a.out.mkdir(parents=True, exist_ok=True)

    model = build_model(a.config, use_ccam=not a.no_ccam, seed=a.seed).to(device).train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=a.lr)
    train_set = make_split(a.data, "train", augment=True)
    val_full = make_split(a.data, "val", augment=False)
    val_idx = np.random.RandomState(a.seed).permutation(len(val_full))
    val_set = Subset(val_full, sorted(val_idx[: a.val_clips].tolist())) if a.val_clips else val_full
    loader = DataLoader(train_set, batch_size=a.batch_clips, shuffle=True, collate_fn=collate, num_workers=0,
                        generator=torch.Generator().manual_seed(a.seed), drop_last=True)

    step, epoch, best, history, elapsed_before = 0, 0, -1.0, [], 0.0
    last = a.out / "last.pt"
    if a.resume and last.exists():
        ck = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"], strict=False)
        opt.load_state_dict(ck["optimizer"])
        step, epoch, best, history = ck["step"], ck["epoch"], ck["best_miou"], ck["history"]
        elapsed_before = ck.get("elapsed_s", 0.0)
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed {last} at step {step}, epoch {epoch}, best val mIoU {best:.4f}", file=sys.stderr)

    def save(path: Path, extra: dict) -> None:
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("audio.")}
        ck = {"model": state, "config": a.config, "use_ccam": not a.no_ccam, "step": step, "epoch": epoch,
              "best_miou": best, "history": history, "args": {k: str(v) for k, v in vars(a).items()}, **extra}
        tmp = path.with_suffix(".tmp")
        torch.save(ck, tmp)
        tmp.replace(path)

    budget_s = a.time_budget_min * 60 if a.time_budget_min else math.inf
    t0 = time.time() - elapsed_before
    steps_per_epoch = len(loader)
    total = steps_per_epoch * a.epochs
    bar = tqdm(total=total if budget_s == math.inf else None, initial=step, file=sys.stderr, desc="train")
    stop = False
    ema = None
    while epoch < a.epochs and not stop:
        for i, batch in enumerate(loader):
            if i < step - epoch * steps_per_epoch:  # fast-forward inside a resumed epoch
                continue
            logits = model(batch["frames"].to(device), batch["audio_logmel"].to(device), t=batch["t"])[0]
            loss = bce_dice_loss(logits, batch["masks"].to(device), batch["mask_valid"].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
            el = time.time() - t0
            eta = min(budget_s - el, (total - step) * el / max(step, 1)) if step else 0
            bar.update(1)
            bar.set_postfix(loss=f"{ema:.3f}", epoch=epoch, eta_min=f"{eta / 60:.0f}", best=f"{best:.3f}")
            out_of_time = el >= budget_s
            if step % a.eval_every == 0 or out_of_time:
                s = evaluate(model, val_set, device)
                history.append({"step": step, "epoch": epoch, "elapsed_s": round(el), "train_loss_ema": ema, **s})
                print(json.dumps(history[-1]), file=sys.stderr)
                if s["miou"] > best:
                    best = s["miou"]
                    save(a.out / "best.pt", {})
                save(last, {"optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(), "elapsed_s": el})
            if out_of_time:
                stop = True
                break
        else:
            epoch += 1
    bar.close()
    if not history or history[-1]["step"] != step:
        s = evaluate(model, val_set, device)
        history.append({"step": step, "epoch": epoch, "elapsed_s": round(time.time() - t0), "train_loss_ema": ema, **s})
        if s["miou"] > best:
            best = s["miou"]
            save(a.out / "best.pt", {})
        save(last, {"optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(), "elapsed_s": time.time() - t0})
    (a.out / "history.json").write_text(json.dumps(history, indent=1))
    print(f"done: {step} steps, best val mIoU {best:.4f} -> {a.out / 'best.pt'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
