"""The network being trained, with everything needed to continue training exactly.

A ``Trainer`` holds:

    net        AZNet on ``device``, trained in train mode (``train_step`` sets it)
    optimizer  ``make_optimizer``: SGD with momentum (or AdamW), two parameter groups
    scheduler  LambdaLR warm-up/step schedule; its ``last_epoch`` = optimiser steps taken
    rng        numpy Generator drawing each batch's positions and symmetries
    step       optimiser steps taken

``checkpoint_parts`` turns all of it into tensors plus JSON (see ``checkpoint``), and
``restore`` puts it back, so a resumed learner draws the same next batch and computes the
same next loss as one that never stopped. Hyperparameters (learning rate, momentum, decay)
come from the current config; the checkpoint's are compared and any change is reported.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from azgo_core.model import AZNet, NetConfig, serialize_model
from azgo_core.train import PositionSampler, TrainConfig, make_optimizer, train_step

from .checkpoint import CheckpointError

# optimiser settings compared between a checkpoint and the config (reported when they differ)
HYPERPARAMETERS = ("lr", "initial_lr", "momentum", "weight_decay", "betas", "eps")


def _plain(value):
    """A JSON-ready copy of an optimiser setting (tuples become lists, the rest as text)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


class Trainer:
    """Network, optimiser, LR schedule, sampling RNG and step counter (see the module docstring)."""

    def __init__(self, net_config: NetConfig, config: TrainConfig, *, seed: int = 0, device: str | torch.device = "cpu"):
        self.config = config
        self.device = torch.device(device)
        torch.manual_seed(seed)  # generation 0's weights depend on the seed only
        self.net = AZNet(net_config).to(self.device)
        self.optimizer, self.scheduler = make_optimizer(self.net, config)
        self.rng = np.random.default_rng(seed)
        self.step = 0

    # --- training -------------------------------------------------------------------------
    def train(self, sampler: PositionSampler) -> dict[str, float]:
        """One optimisation step on a batch drawn from ``sampler``; returns ``train_step``'s metrics.

        Raises ValueError (a game that cannot be replayed) or FloatingPointError (non-finite
        loss) without counting a step.
        """
        batch = sampler.sample(self.config.batch_size, self.rng)
        metrics = train_step(self.net, self.optimizer, self.scheduler, batch, self.config)
        self.step += 1
        return metrics

    def model_bytes(self, generation: int, samples_seen: int) -> bytes:
        """The current weights as a model file for ``generation`` (parent: the one before)."""
        return serialize_model(self.net, generation=generation, parent_generation=generation - 1 if generation > 0 else None,
                               training_steps=self.step, samples_seen=samples_seen)

    def load_weights(self, net: AZNet) -> bool:
        """Copy ``net``'s weights when its architecture is ours; False (nothing changed) otherwise."""
        if net.config != self.net.config:
            return False
        self.net.load_state_dict(net.state_dict())
        return True

    # --- checkpoint -----------------------------------------------------------------------
    def checkpoint_parts(self) -> tuple[dict[str, torch.Tensor], dict]:
        """(tensors, JSON state) of everything ``restore`` needs."""
        tensors = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        opt = self.optimizer.state_dict()
        scalars: dict[str, dict] = {}
        for index, values in opt["state"].items():
            for name, value in values.items():
                if torch.is_tensor(value):
                    tensors[f"opt.{index}.{name}"] = value
                else:
                    scalars.setdefault(str(index), {})[name] = _plain(value)
        tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            for d, state in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda.{d}"] = state
        state = {
            "step": self.step,
            "architecture": self.net.config.to_json(),
            "optimizer": {
                "name": type(self.optimizer).__name__,
                "param_groups": [{k: _plain(v) for k, v in g.items() if k != "params"} for g in opt["param_groups"]],
                "scalars": scalars,
            },
            "scheduler": {"last_epoch": self.scheduler.last_epoch, "step_count": self.scheduler._step_count},
            "numpy_rng": self.rng.bit_generator.state,
        }
        return tensors, state

    def restore(self, tensors: dict[str, torch.Tensor], state: dict) -> list[str]:
        """Load what ``checkpoint_parts`` produced; returns notes on config changes worth logging.

        Raises ``CheckpointError`` when the checkpoint is for another architecture or is incomplete.
        """
        try:
            saved = NetConfig.from_json(state["architecture"])
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"checkpoint has no usable architecture ({exc!r})") from None
        if saved != self.net.config:
            raise CheckpointError(f"checkpoint is for network {saved}, the config asks for {self.net.config}: "
                                  "move the learner's data_dir aside or restore the model settings")
        net_state = {k[len("net."):]: v for k, v in tensors.items() if k.startswith("net.")}
        try:
            torch_rng = tensors["rng.torch"]  # looked up first: a checkpoint without it changes nothing
            self.net.load_state_dict(net_state, strict=True)
            notes = self._restore_optimizer(tensors, state["optimizer"])
            self._restore_schedule(state["scheduler"])
            self.rng.bit_generator.state = state["numpy_rng"]
            self.step = int(state["step"])
            torch.set_rng_state(torch_rng)
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint does not restore: {exc!r}") from None
        if torch.cuda.is_available():
            for d in range(torch.cuda.device_count()):
                if f"rng.cuda.{d}" in tensors:
                    torch.cuda.set_rng_state(tensors[f"rng.cuda.{d}"], d)
        return notes

    def _restore_optimizer(self, tensors: dict[str, torch.Tensor], saved: dict) -> list[str]:
        """Momentum (or Adam moments) from the checkpoint; hyperparameters from the config."""
        name = type(self.optimizer).__name__
        if saved["name"] != name:
            return [f"optimizer changed from {saved['name']} to {name}: its state starts afresh"]
        per_param: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("opt."):
                _, index, field = key.split(".", 2)
                per_param.setdefault(int(index), {})[field] = value
        for index, values in saved["scalars"].items():
            per_param.setdefault(int(index), {}).update(values)
        current = self.optimizer.state_dict()
        self.optimizer.load_state_dict({"state": per_param, "param_groups": current["param_groups"]})
        notes = []
        for i, (old, new) in enumerate(zip(saved["param_groups"], current["param_groups"])):
            for key in HYPERPARAMETERS:
                if key in old and key != "lr" and old[key] != _plain(new.get(key)):
                    notes.append(f"param group {i}: {key} changed from {old[key]} to {_plain(new.get(key))} (config wins)")
        return notes

    def _restore_schedule(self, saved: dict) -> None:
        """Put the LR schedule at the saved step: lr = base lr x schedule(last_epoch), as LambdaLR computes it."""
        sched = self.scheduler
        sched.last_epoch = int(saved["last_epoch"])
        sched._step_count = int(saved["step_count"])
        lrs = [base * fn(sched.last_epoch) for base, fn in zip(sched.base_lrs, sched.lr_lambdas)]
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        sched._last_lr = lrs
