"""Training loop and ONNX export of the vision CNNs (torch; imported only by train/export)."""

from __future__ import annotations

__all__ = ["TrainResult", "export_onnx", "fit", "load_weights"]

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cloud_stream.training.nets import Arch, ProbsHead, build
from cloud_stream.training.progress import Progress
from pipeline.modelpkg import ImageInput

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`fit` measured."""

    val_accuracy: float
    train_loss: float
    best_epoch: int
    epochs: int
    seconds: float
    params: int
    device: str = "cpu"


def _tensor(batch: np.ndarray, spec: ImageInput) -> torch.Tensor:
    x = torch.from_numpy(batch).float().mul_(spec.scale)
    x = x.sub_(torch.tensor(spec.mean)).div_(torch.tensor(spec.std))
    return x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flips (parts lie any way round) and a mild brightness change."""
    n = x.shape[0]
    flip_h = torch.rand(n, generator=gen) < 0.5
    flip_v = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip_h[:, None, None, None], x.flip(3), x)
    x = torch.where(flip_v[:, None, None, None], x.flip(2), x)
    gain = 1.0 + 0.1 * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
    return x * gain


def _device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


def _accuracy(net: nn.Module, xs: np.ndarray, ys: np.ndarray, spec: ImageInput) -> float:
    net.eval()
    correct = 0
    dev = _device(net)
    with torch.inference_mode():
        for i in range(0, len(xs), 256):
            pred = net(_tensor(xs[i : i + 256], spec).to(dev)).argmax(1).cpu().numpy()
            correct += int((pred == ys[i : i + 256]).sum())
    return correct / max(1, len(xs))


def _precise_bn(net: nn.Module, xs: np.ndarray, spec: ImageInput, limit: int = 1024) -> None:
    """Recompute BatchNorm statistics with the final weights of the epoch.

    The running averages lag behind weights that change quickly (one-cycle peak
    LR), which made eval-mode accuracy swing far below train-mode accuracy.
    """
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or not len(xs):
        return
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the passes below
    net.train()
    dev = _device(net)
    step = max(1, len(xs) // limit)
    sample = xs[::step][:limit]
    with torch.no_grad():
        for i in range(0, len(sample), 128):
            net(_tensor(sample[i : i + 128], spec).to(dev))
    for bn in bns:
        bn.momentum = 0.1


def fit(
    arch: Arch,
    spec: ImageInput,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    *,
    classes: int,
    epochs: int,
    seed: int,
    weights: Path,
    batch: int = 32,
    lr: float = 3e-3,
    init: Path | None = None,
    label_smoothing: float = 0.0,
    device: str | None = None,
) -> TrainResult:
    """Train with AdamW and one-cycle LR; keep the weights of the best validation epoch.

    Args:
        arch: The network shape.
        spec: Input spec (normalisation).
        train: uint8 images (N, H, W, C) and labels.
        val: The same for validation; may be empty (then the last epoch is kept).
        classes: Number of classes.
        epochs: Passes over the training data.
        seed: Seeds torch and the batch order.
        weights: Where to save the state dict.
        batch: Batch size.
        lr: Peak learning rate.
        init: Weights to start from (continue an earlier run) instead of random ones.
        label_smoothing: Cross-entropy label smoothing (0: none).
        device: torch device; None: CUDA when available, else the CPU (2 threads).
    """
    torch.set_num_threads(min(2, torch.get_num_threads()))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    order_rng = np.random.default_rng(seed)
    net = build(arch, channels=spec.channels, classes=classes)
    if init is not None:
        net.load_state_dict(torch.load(init, map_location="cpu", weights_only=True))
    net = net.to(dev).to(memory_format=torch.channels_last)
    params = sum(p.numel() for p in net.parameters())
    xs, ys = train
    steps = max(1, (len(xs) + batch - 1) // batch)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=steps * epochs, pct_start=0.2
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    best, best_epoch, last_loss = -1.0, 0, float("nan")
    started = time.monotonic()
    for epoch in range(1, epochs + 1):
        net.train()
        order = order_rng.permutation(len(xs))
        progress = Progress(steps, f"epoch {epoch}/{epochs}")
        total = 0.0
        for i in range(steps):
            idx = order[i * batch : (i + 1) * batch]
            x = _augment(_tensor(xs[idx], spec), gen).to(dev)
            loss = loss_fn(net(x), torch.from_numpy(ys[idx]).to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
            progress.step(note=f"loss {total / (i + 1):.4f}")
        last_loss = total / steps
        _precise_bn(net, xs, spec)
        acc = _accuracy(net, *val, spec) if len(val[0]) else 0.0
        progress.done(note=f"loss {last_loss:.4f} val_acc {acc:.4f}")
        logger.info("epoch %d: loss %.4f, val accuracy %.4f", epoch, last_loss, acc)
        if acc >= best or not len(val[0]):
            best, best_epoch = acc, epoch
            torch.save({k: v.cpu() for k, v in net.state_dict().items()}, weights)
    return TrainResult(
        val_accuracy=max(best, 0.0),
        train_loss=last_loss,
        best_epoch=best_epoch,
        epochs=epochs,
        seconds=time.monotonic() - started,
        params=params,
        device=dev.type,
    )


def load_weights(arch: Arch, weights: Path, *, channels: int, classes: int) -> nn.Module:
    """Rebuild a trained net in eval mode."""
    net = build(arch, channels=channels, classes=classes)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    net.eval()
    return net


def export_onnx(net: nn.Module, spec: ImageInput, out: Path, *, opset: int = 17) -> Path:
    """Export ``net`` with a softmax on top: input ``spec.name``, output ``output`` (probs).

    The batch axis is dynamic (the edge feeds one frame, evaluation feeds many).
    BatchNorm folds into the convolutions (eval mode, constant folding).
    """
    model = ProbsHead(net).eval()
    shape = (
        (1, spec.channels, spec.height, spec.width)
        if spec.layout == "nchw"
        else (1, spec.height, spec.width, spec.channels)
    )
    if spec.layout == "nhwc":
        raise ValueError("the vision nets are exported channels-first (layout nchw)")
    dummy = torch.zeros(shape)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, which needs
        # onnxscript; the output is the same plain opset-17 graph.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (dummy,),
            str(out),
            dynamo=False,
            input_names=[spec.name],
            output_names=["output"],
            opset_version=opset,
            dynamic_axes={spec.name: {0: "batch"}, "output": {0: "batch"}},
            do_constant_folding=True,
        )
    return out
