"""Read-only pattern finding over a libcst module; produces a `ScriptPlan` (see plan.py).

Finding codes used by the converter (stable; see migrate/findings.py for severities):

| code   | severity      | meaning                                                                  |
|--------|---------------|--------------------------------------------------------------------------|
| MIG101 | info          | converted train loop at FILE:A-B to training_step                        |
| MIG102 | info          | converted validation loop at FILE:A-B to validation_step                 |
| MIG103 | info          | converted test loop at FILE:A-B to test_step and trainer.test            |
| MIG104 | info          | a loss module built inside a helper now built once in __init__           |
| MIG105 | info          | device handling (`device = ...`, `.to(device)`, CUDA housekeeping) removed|
| MIG106 | info          | epoch loop at FILE:A-B replaced by Trainer(max_epochs=...).fit           |
| MIG107 | info          | a per-batch accumulation (`total += ...`) logged with self.log           |
| MIG108 | info          | a print / tqdm bar replaced by self.log and the progress bar             |
| MIG109 | info          | optimizer re-created every epoch: state reset in on_train_epoch_start    |
| MIG110 | info          | housekeeping (`gc.collect()`, `empty_cache()`) kept in an epoch-end hook   |
| MIG111 | info          | epoch-level statement reading evaluation results moved to an epoch-end hook|
| MIG120 | info          | several optimizers stepped in one train loop: manual optimization, same order|
| MIG121 | info          | once-per-epoch computation (`with torch.no_grad(): ...`) moved to on_train_epoch_end|
| MIG122 | info          | scheduler stepped in on_train_epoch_end (manual optimization steps none)   |
| MIG130 | info          | `scheduler.step(metric)` (ReduceLROnPlateau): lr_scheduler config monitors |
|        |               | the metric's logged name, stepped by the Trainer at each epoch's end       |
| MIG131 | info          | lr read only to be printed dropped; LearningRateMonitor logs it            |
| MIG132 | info          | hand-written lr change on param_groups kept in an epoch-end hook           |
| MIG133 | info          | patience counter on an epoch metric replaced by EarlyStopping              |
| MIG134 | info          | `torch.save(model.state_dict(), path)` on improvement -> ModelCheckpoint   |
| MIG135 | warning       | ModelCheckpoint has no min_delta: its best can be a later epoch's          |
| MIG136 | info          | reload of the saved best weights -> load_from_checkpoint(best_model_path)  |
| MIG137 | info          | `break` out of the epoch loop -> `self.trainer.should_stop = True`         |
| MIG138 | warning       | code after training reads the best-weights file the script no longer writes|
| MIG140 | info          | clip_grad_norm_/clip_grad_value_ moved to Trainer(gradient_clip_val=...)  |
| MIG141 | info          | autocast replaced by Trainer(precision=...)                              |
| MIG142 | info          | GradScaler removed: precision="16-mixed" scales the loss                 |
| MIG143 | info          | loss / k + step every k batches -> Trainer(accumulate_grad_batches=k)    |
| MIG144 | info          | zero_grad() outside the batch loop removed                               |
| MIG145 | info          | SummaryWriter -> TensorBoardLogger; add_scalar -> self.log               |
| MIG146 | info          | a global step counter removed (the Trainer counts steps)                 |
| MIG147 | info          | Variable(...) / DataParallel(...) unwrapped                              |
| MIG150 | info          | hand-written trainer class: its fit() loop converted; class removed (or kept)|
| MIG151 | info          | the trainer class's own state (`self.history`) dropped: nothing reads it   |
| MIG152 | info          | a method's returned dict of metrics read key by key (one result per key)  |
| MIG160 | info          | a second training phase folded into the same fit (on_train_epoch_start)  |
| MIG201 | warning       | metric printed floored (`100 * correct // total`): logged as the exact mean|
| MIG202 | warning       | `acc / n`, n bound outside the loop, logged as a mean over the samples   |
| MIG203 | warning       | an autocast that differs from the training step's (one precision for all)|
| MIG204 | warning       | a wandb call kept as it is (WandbLogger is Lightning's, not the runtime's) |
| MIG301 | not-converted | statement kept as it was, marked `# migrate: review`                     |
| MIG302 | not-converted | `loss.backward(...)` with arguments                                       |
| MIG303 | not-converted | an epoch loop whose batch loop could not be read: the file left as it was |
"""

from migrate.analysis.plan import ScriptPlan
from migrate.analysis.script import analyse, is_lightning_form, is_lightning_source

__all__ = ["ScriptPlan", "analyse", "is_lightning_form", "is_lightning_source"]
