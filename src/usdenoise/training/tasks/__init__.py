"""What `fit()` can train. A task builds the network and its loss, turns a batch into
(input, target) and says what validation measures; `TASKS` lists them explicitly.

A task has: `name`, `keys` (sample entries the loader keeps), `figures` (what `measure`
returns, reported as val_<name>), `checkpoint_kind`, and the methods `build_model`,
`build_loss`, `prepare_dataset`, `loss_inputs`, `checkpoint_meta`, `batch`,
`validation_batch` and `measure` (see `DenoiseTask`). A task whose loss is not
`loss(net(input), target)` (the self-supervised ones apply the network to more than one
input) also has `loss_fn(forward, input, target)`, which the loop then calls instead, and
`validation_loss_fn` of the same signature for the validation loss that picks the best epoch.
"""

from usdenoise.training.tasks.denoise import DenoiseTask
from usdenoise.training.tasks.segment import SegmentTask
from usdenoise.training.tasks.selfsupervised import SelfSupervisedTask

TASKS: dict[str, type] = {"denoise": DenoiseTask, "segment": SegmentTask,
                          "selfsupervised": SelfSupervisedTask}

__all__ = ["TASKS", "DenoiseTask", "SegmentTask", "SelfSupervisedTask"]
