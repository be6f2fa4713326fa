"""Offline datasets packaged as `Task`s: the digits tasks and image folders."""

from ddq_edge.data.digits import digits_hard_task, digits_task
from ddq_edge.data.image_folder import load_image_folder, preprocess_image
from ddq_edge.data.task import Task

TASK_NAMES = ("digits", "digits-hard", "digits-hard-32")

__all__ = ["TASK_NAMES", "Task", "get_task", "load_image_folder", "preprocess_image"]


def get_task(name: str, seed: int = 0) -> Task:
    """Build a named task; `seed` drives its augmentation ("digits" has none)."""
    if name == "digits":
        return digits_task()
    if name == "digits-hard":
        return digits_hard_task(seed, size=16)
    if name == "digits-hard-32":
        return digits_hard_task(seed, size=32)
    raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASK_NAMES)}")
