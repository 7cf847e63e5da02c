"""Stand-ins for a training loop, as a method sees it (alum.adversarial.Trainer): they record what the
method asks of the loop."""

from __future__ import annotations

import torch


class RecordingTrainer:
    """Counts backward calls and optimizer steps. With `apply=False` nothing reaches the parameters."""

    def __init__(self, model=None, apply: bool = True, lr: float = 0.0):
        self.model, self.apply, self.lr = model, apply, lr
        self.backwards = 0
        self.steps = 0
        self.losses: list[float] = []

    def backward(self, loss):
        self.backwards += 1
        self.losses.append(float(loss.detach()))
        if self.apply:
            loss.backward()

    def loss_scale(self):
        return 1.0

    def optimizer_step(self):
        self.steps += 1
        if self.apply and self.lr and self.model is not None:
            with torch.no_grad():
                for p in self.model.parameters():
                    if p.grad is not None:
                        p -= self.lr * p.grad
                        p.grad = None


class ScaledTrainer(RecordingTrainer):
    """An fp16 loss-scaling loop: backward runs on loss * S."""

    def __init__(self, model, scale):
        super().__init__(model, apply=True, lr=0.0)
        self.scale = scale

    def backward(self, loss):
        super().backward(loss * self.scale)

    def loss_scale(self):
        return self.scale
