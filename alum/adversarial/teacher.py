"""SMART's momentum teacher: an exponential moving average of the student's weights (the Bregman
proximal point anchor). It never receives gradients; with one proximal step per update (S=1) it costs
one extra no-grad forward per micro-batch."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from alum.errors import UserError


def check_student(student: nn.Module) -> None:
    """The teacher needs the full weights on every process: refuse ZeRO-3 before any work."""
    if any(hasattr(p, "ds_status") for p in student.parameters()):
        raise UserError(
            "method 'smart' cannot run under ZeRO stage 3: its momentum teacher is a full copy of the model on "
            "every process, updated from the full weights after each step, and ZeRO-3 partitions them; "
            "use ZeRO stage 0, 1 or 2 (e.g. configs/deepspeed/zero2.json)"
        )


class MomentumTeacher:
    """theta_teacher <- beta * theta_teacher + (1 - beta) * theta_student, after every optimizer step of
    the method's own (`updates` counts them from the teacher's birth, so a teacher born at a pretraining
    switch starts its schedule there).

    beta is `beta` for the first `switch` fraction of `total_updates` and `beta_late` after (SMART: 0.99
    then 0.999 after 10%). The teacher keeps float32 weights under a bf16 or fp16 student, so a beta of
    0.999 still moves it (a bf16 update of 1e-3 of a difference rounds away), and float64 under a float64 one.
    """

    def __init__(self, student: nn.Module, beta: float, beta_late: float, switch: float, total_updates: int):
        check_student(student)
        self.beta, self.beta_late, self.switch = beta, beta_late, switch
        self.total_updates = max(1, total_updates)
        self.updates = 0
        # float32 at least, float64 for a float64 student (whose logits meet the teacher's in one dot product)
        wide = torch.float64 if next(student.parameters()).dtype == torch.float64 else torch.float32
        self.model = copy.deepcopy(student).to(wide)
        for p in self.model.parameters():
            p.requires_grad_(False)

    def beta_at(self, update: int) -> float:
        return self.beta if update <= self.switch * self.total_updates else self.beta_late

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        self.updates += 1
        weight = 1.0 - self.beta_at(self.updates)
        teacher = [p for p in self.model.parameters()]
        current = [s.detach().to(t.dtype) for t, s in zip(teacher, student.parameters())]
        torch._foreach_lerp_(teacher, current, weight)

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["weights"])
        self.updates = state["updates"]
