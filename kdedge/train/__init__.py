"""Training: the loop (loop.fit) with its distillation method (methods; hooks and adapters of feature methods:
features), scoring (evaluation), the one checkpointing object (checkpoint, its file format state_file,
resuming a run resume), optimiser and schedule (optim), augmentation (augment), the teacher-logit cache
(teacher_cache), torchrun / DDP (distributed), devices (devices), and what `kdedge train` / `distill` run end
to end (pipeline.run_recipe)."""

import sys

from kdedge import CallablePackage

sys.modules[__name__].__class__ = CallablePackage  # kdedge.train(recipe, ...) is the API call (kdedge.api)
