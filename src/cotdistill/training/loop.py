"""The distillation trainer: SFT and KD on truncated records, resumable, single- or multi-process.

Reduction contract: each micro-batch's loss is a *sum* over its supervised tokens; before the first backward of an
optimizer step the supervised tokens of all its micro-batches on all ranks are counted, and every micro-batch's
sum is divided by that one number. So batch 8 × accumulation 1, batch 1 × accumulation 8 and 2 processes × 4
give the same gradient. Under ``loss.normalize: sequences`` each token enters the sum times 1 / (its sequence's
supervised tokens) and the number counted is the sequences with a supervised token: the same invariances hold.

Data order: the length-grouped micro-batches of an epoch form one global list; optimizer step ``s`` consumes
micro-batches ``[s·G, (s+1)·G)`` with ``G = grad_accum × world_size``, rank ``r`` taking every ``world_size``-th
one. The position in the data is therefore the step number, which is what a checkpoint stores.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cotdistill.compute import MemoryMonitor, ModelShape
from cotdistill.config import save_config, to_dict
from cotdistill.data.batching import Batch, BatchPlan, Collator
from cotdistill.data.encode import IGNORE_INDEX, EncodedExample
from cotdistill.data.prepare import PreparedData, load_config_records, prepare_data
from cotdistill.distributed import DistInfo, all_reduce_sum, barrier, cleanup, init_distributed
from cotdistill.errors import TrainingError
from cotdistill.losses import combine
from cotdistill.models import (
    load_tokenizer,
    model_source,
    pick_device,
    read_chat_template,
    shared_vocab_size,
)
from cotdistill.outputs import claim_output, train_inputs
from cotdistill.precision import autocast, precision_note, resolve_precision
from cotdistill.threads import configure_threads, warn_if_oversubscribed
from cotdistill.training import checkpoint as ckpt
from cotdistill.training.config import TrainConfig
from cotdistill.training.objective import StudentLoss, check_head_is_reproduced
from cotdistill.training.parallel import clip_gradients, gradient_sync, is_sharded, wrap_distributed
from cotdistill.training.reporting import (
    check_report_to,
    count_batch,
    fresh_state,
    run_reporters,
    run_summary,
    truncate_metrics,
    warn,
)
from cotdistill.training.resume import param_groups
from cotdistill.training.rollout import ROLLOUT_COUNTERS, Rollouts, add_rollout_counts, rollout_summary
from cotdistill.training.saving import RunCheckpoints
from cotdistill.training.schedule import build_scheduler, check_schedule
from cotdistill.training.setup import load_student, max_positions, teacher_source, uncovered_validation

logger = logging.getLogger("cotdistill.training")


def ranked_figure(val: dict[str, float], metric: str) -> str | None:
    """The figure ``keep_best`` ranks checkpoints by: ``best_metric``, or ``val_ce`` where that is ``val_loss`` and
    the teacher does not hold the validation records (then ``evaluate`` reports CE only; the run warned once at
    its start); ``None`` without validation records."""
    if not val:
        return None
    return metric if metric in val else "val_ce"


def record_best(state: dict, val: dict[str, float], metric: str) -> bool:
    """Whether the validation ``val`` at ``state["step"]`` is the best so far by ``metric``; if so ``state`` now
    says so (``best_val``, ``best_by``, ``best_step``). A best measured in another figure (``best_metric`` changed
    on resume) is not comparable: the first validation after the change replaces it."""
    figure = ranked_figure(val, metric)
    # a NaN figure is never a best: once recorded, nothing compares below it and best/ would stay that step
    if figure is None or not math.isfinite(val[figure]) or (figure == state.get("best_by")
                                                             and not val[figure] < state["best_val"]):
        return False
    state.update(best_val=val[figure], best_by=figure, best_step=state["step"])
    return True


@dataclass
class GivenObjects:
    """What a Python caller passed already loaded instead of by name: models, tokenizer, data rows. ``None`` means
    "load what the config names"."""

    student: nn.Module | None = None
    teacher: nn.Module | None = None
    tokenizer: object | None = None
    data: object | None = None  # a datasets.Dataset or a list of row dicts
    val_data: object | None = None


def load_tokenizers(cfg: TrainConfig, given: GivenObjects | None = None):
    """The student's tokenizer and the run's teacher source, with the pairing checked: the model paths exist, KD
    has a teacher, teacher and student share one vocabulary, a cache opens. Cheap: no weights are loaded."""
    given = given or GivenObjects()
    if given.tokenizer is not None:
        tokenizer = given.tokenizer
        if cfg.chat_template is not None:
            tokenizer.chat_template = read_chat_template(cfg.chat_template)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    else:
        if given.student is None:
            model_source(cfg.student, "student")  # its config.json, before its tokenizer and weights
        elif cfg.tokenizer is None:
            raise TrainingError("a student passed as a model object needs its tokenizer: pass tokenizer=… or set "
                                "the config's tokenizer to a path or hub id")
        tokenizer = load_tokenizer(cfg.tokenizer or cfg.student, chat_template=cfg.chat_template,
                                   role="tokenizer" if cfg.tokenizer else "student")
    source = teacher_source(cfg, given.teacher)
    source.check(tokenizer)
    return tokenizer, source


def check_inputs(cfg: TrainConfig) -> None:
    """Every check a run makes before loading weights (models, pairing, data), for stages that start runs later:
    a sweep refuses a bad base config at once instead of failing each of its settings."""
    load_tokenizers(cfg)
    load_config_records(cfg.data, limit=cfg.data.read_limit)


class Trainer:
    """The training recipe: set up (data, batch plan, models, optimizer), then optimizer steps with validation,
    checkpoints and reports, then the final model and run summary. The parts live beside it: the data in
    ``data.prepare`` and ``data.batching``, the objective in ``training.objective``, resumption in
    ``training.resume``, checkpoints in ``training.checkpoint``, reports in ``training.reporting``."""

    def __init__(self, config: TrainConfig, given: GivenObjects | None = None) -> None:
        self.cfg = config
        self.given = given or GivenObjects()
        self.device = pick_device(config.device)
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
        self.out = Path(config.output_dir)
        self.precision = resolve_precision(config.precision, self.device)  # what every forward computes in
        # claimed before anything loads: a second run on the folder, or an output_dir holding one of this run's
        # inputs (student=runs/x/final output_dir=runs/x), is refused at once, not after the weights have loaded
        self._claim: contextlib.ExitStack | None = self._claim_output()
        try:
            self._set_up()
        except BaseException:
            self._release_output()
            raise

    # --- set-up ------------------------------------------------------------------------------------------------
    def _set_up(self) -> None:
        config = self.cfg
        check_report_to(config.report_to)
        if config.threads is not None:
            configure_threads(config.threads)
        else:  # the command line (or the caller) has set the threads already: only say if the cores are busy
            warn_if_oversubscribed(torch.get_num_threads())
        torch.manual_seed(config.seed)
        # everything a user can get wrong (paths, pairing, data) is checked before any weights are loaded
        self.tokenizer, self.teacher_source = load_tokenizers(config, self.given)
        self.data = self._prepare_data()
        self.collator = Collator(self.tokenizer.pad_token_id, config.pad_to_multiple_of, self.device)
        self.plan = BatchPlan(self.data.examples, self.collator, batch_size=config.optim.batch_size,
                              grad_accum=config.optim.grad_accum, seed=config.seed, packing=config.packing,
                              pack_length=config.pack_length, world_size=self.dist.world_size, rank=self.dist.rank)
        self.total_steps = config.optim.max_steps or max(1, math.ceil(config.optim.epochs * self.plan.steps_per_epoch))
        check_schedule(config.optim, self.total_steps)
        self.eval_interval = config.validation_interval(self.plan.steps_per_epoch)  # steps between validations
        # on-policy steps (loss.on_policy > 0) sample from the student; their prompts are checked here, before weights
        self.rollouts = (Rollouts(config, self.tokenizer, self.data.records, self.collator,
                                  max_positions(config, self.given.student, self.teacher_source))
                         if config.loss.on_policy > 0 else None)
        # a cache that does not fit this run is refused before any weights load too
        self.teacher_source.check_data(self.tokenizer, self.data)
        self._load_models()
        self._build_optimizer()
        self.checkpoints = RunCheckpoints(config, self.dist, self.student, self.loss_module, self.optimizer,
                                          self.scheduler, self.tokenizer, self.sharded, self.precision)
        self.resume_notes: list[str] = []
        self.config_changes: list[str] = []

    def _prepare_data(self) -> PreparedData:
        data = prepare_data(self.cfg.data, self.cfg.encode, self.tokenizer, rows=self.given.data,
                            val_rows=self.given.val_data,
                            max_positions=max_positions(self.cfg, self.given.student, self.teacher_source))
        for warning in data.warnings:
            warn(warning, self.dist.is_main)
        if self.dist.is_main:
            logger.info("%s", data.describe(self.cfg.data.dedup))
            lost = data.lost_share_warning(self.cfg.data.dedup)
            if lost:
                warn(lost, True)
        return data

    def _load_models(self) -> None:
        cfg, given = self.cfg, self.given
        self.student = load_student(cfg, given.student, self.device)
        self.teacher, self.teacher_shape, teacher_rows = self.teacher_source.load(self.device, self.dist,
                                                                                  len(self.tokenizer))
        self.vocab = shared_vocab_size(self.student.config.vocab_size, teacher_rows or self.student.config.vocab_size,
                                       len(self.tokenizer))
        check_head_is_reproduced(self.student, "student", self.vocab)
        self.loss_module = StudentLoss(self.student, cfg.loss, self.vocab)
        self.model = self.loss_module
        if self.dist.enabled:
            self.model = wrap_distributed(self.loss_module, cfg, self.device, self.dist)
        self.sharded = is_sharded(self.model)
        self.student_shape = ModelShape.from_config(self.student.config)
        # a cache holds only the records it was built on: validation without them has no KD to report
        self.val_kd_known = self.teacher is None or self.teacher.covers(self.data.val_examples)
        if self.data.val_examples and not self.val_kd_known:
            warn(uncovered_validation(cfg), self.dist.is_main)

    def _build_optimizer(self) -> None:
        o = self.cfg.optim
        params = [p for p in self.loss_module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(param_groups(params, o), lr=o.lr, betas=o.betas)
        self.scheduler = build_scheduler(self.optimizer, o, self.total_steps)

    # --- forward -------------------------------------------------------------------------------------------------
    def _autocast(self):
        return autocast(self.device, self.precision)

    def _loss_sums(self, batch: Batch, model: nn.Module, with_teacher: bool = True) -> torch.Tensor:
        """``[objective, CE, KD]`` sums of a micro-batch; only the objective carries a gradient. KD is 0 without a
        teacher (none in this run, or ``with_teacher=False`` where it does not cover the batch)."""
        t = batch.tensors
        targets_all = t["labels"][:, 1:]
        mask = targets_all != IGNORE_INDEX
        with self._autocast():
            use = with_teacher and self.teacher is not None
            teacher = self.teacher.inputs(t, batch.indices, mask) if use else None
            return model(t["input_ids"], t["attention_mask"], t["position_ids"], mask, targets_all[mask], teacher)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation CE, KD and objective per supervised token (under ``loss.normalize: sequences``, the mean of
        each record's token mean, as in training); CE alone where the teacher (a cache) does not hold
        the validation records, since a KD of 0 there would be a figure nobody measured. The validation batches are
        split across ranks. Under FSDP every forward is a collective, so every rank runs the same number: a rank
        whose share has run out repeats a batch and discards it."""
        if not self.data.val_examples:  # no validation split: no figure, rather than a loss of 0.0 saved as "best"
            return {}
        self.loss_module.eval()
        size, world, rank = self.cfg.optim.batch_size, self.dist.world_size, self.dist.rank
        starts = list(range(0, len(self.data.val_examples), size))
        collective = self.sharded or is_sharded(self.teacher)
        end = world * math.ceil(len(starts) / world) if collective else len(starts)
        sums, n = torch.zeros(2, device=self.device), 0
        for k in range(rank, end, world):
            counted = k < len(starts)
            start = starts[k] if counted else starts[0]
            batch = self.collator.batch(self.data.val_examples[start:start + size])
            micro = self._loss_sums(batch, self.loss_module, with_teacher=self.val_kd_known)[1:].float()
            if counted:
                sums += micro
                n += batch.divisor(self.cfg.loss.normalize)
        self.loss_module.train()
        total = torch.cat([sums, torch.tensor([float(n)], device=self.device)])
        all_reduce_sum(total, self.dist)
        n = max(total[2].item(), 1.0)
        ce, kd = total[0].item() / n, total[1].item() / n
        if not self.val_kd_known:  # neither KD nor the objective that mixes it in was measured
            return {"val_ce": ce}
        objective = combine(torch.tensor(ce), torch.tensor(kd), self.cfg.loss).item()
        return {"val_ce": ce, "val_kd": kd, "val_loss": objective}

    # --- the loop ------------------------------------------------------------------------------------------------
    def _claim_output(self) -> contextlib.ExitStack:
        claim = contextlib.ExitStack()
        claim.enter_context(claim_output(self.out, "output_dir", train_inputs(self.cfg), enabled=self.dist.is_main))
        return claim

    def _release_output(self) -> None:
        if self._claim is not None:
            self._claim.close()
            self._claim = None

    def train(self) -> dict:
        # held since __init__ and let go when training ends; a second train() on this trainer claims it again
        claim, self._claim = self._claim or self._claim_output(), None
        with claim:
            return self._train_locked()

    def _train_locked(self) -> dict:
        cfg, is_main = self.cfg, self.dist.is_main
        state, resumed_from = self._start_state()
        if is_main:  # written once the config is known to be the one this run's weights follow
            save_config(cfg, self.out / "config.yaml")
        self._warm_up()
        monitor = MemoryMonitor(self.device).start()
        reporters = run_reporters(cfg, self.out, self.total_steps, state["step"], to_dict(cfg)) if is_main else None
        last_val: dict[str, float] = {}
        t_start = time.perf_counter() - state["elapsed"]
        # from_pretrained returns a model in eval mode: without this, dropout would stay off until the first
        # validation pass switched it on (and forever with eval_every: 0)
        self.loss_module.train()
        try:
            while state["step"] < self.total_steps:
                log = self._timed_step(state, t_start, monitor)
                done = state["step"] == self.total_steps
                if (self.eval_interval and state["step"] % self.eval_interval == 0) or done:
                    last_val = self._validate(state)
                    log.update(last_val)
                if reporters is not None:
                    reporters.log(state["step"], log)
                if cfg.save_every and state["step"] % cfg.save_every == 0 and not done:
                    self.checkpoints.save(state, self.data.fingerprint)
        finally:
            self.loss_module.eval()
            if reporters is not None:
                reporters.close()
        peak = monitor.stop()
        return self._finish(state, peak, last_val, resumed_from)

    def _start_state(self) -> tuple[dict, Path | None]:
        """The run's counters: fresh, or those of the checkpoint it resumes (weights, optimizer and RNG loaded)."""
        state = fresh_state()
        resumed_from, notes = ckpt.resumable_checkpoint(self.out) if self.cfg.resume else (None, [])
        self.resume_notes = notes
        for note in notes:
            warn(note, self.dist.is_main)
        if resumed_from is None:
            return state, None
        saved_state = self.checkpoints.resume(resumed_from, self.data.fingerprint, self.total_steps)
        self.resume_notes += self.checkpoints.notes
        self.config_changes = self.checkpoints.changes
        state = {**state, **saved_state}  # a checkpoint may predate a key
        if "best_by" not in saved_state and math.isfinite(state["best_val"]):
            # a run from before best_metric ranked by the objective wherever validation measured it
            state["best_by"] = "val_loss" if self.val_kd_known else "val_ce"
        if self.dist.is_main:
            truncate_metrics(self.out / "metrics.jsonl", state["step"])
        return state, resumed_from

    def _timed_step(self, state: dict, t_start: float, monitor: MemoryMonitor) -> dict:
        """One optimizer step, and its log line."""
        step, t_step = state["step"], time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]  # the lr this step uses (the scheduler moves it after)
        log = self._optimizer_step(step, state)
        state["step"] = step + 1
        state["elapsed"] = time.perf_counter() - t_start
        log.update(step=step + 1, lr=lr, elapsed=state["elapsed"], tokens=state["processed_tokens"],
                   supervised_tokens=state["supervised_tokens"],
                   tokens_per_s=log["step_tokens"] / max(time.perf_counter() - t_step, 1e-9),
                   peak_memory=monitor.peak_above_baseline())
        return log

    def _validate(self, state: dict) -> dict[str, float]:
        """Validation figures; a new best is kept in ``best/``."""
        val = self.evaluate()
        if self.cfg.keep_best and record_best(state, val, self.cfg.best_metric):
            self.checkpoints.save_model("best")
        return val

    def _warm_up(self) -> None:
        """One tiny forward + backward before the memory baseline is taken, so that one-off runtime start-up costs
        (thread pools, allocator arenas) are not counted as training memory. No optimizer step: weights, optimizer
        state and RNG streams are untouched."""
        example = self.data.examples[0]
        n = min(len(example), 8)
        tiny = EncodedExample(example.input_ids[:n], example.input_ids[:n], example.segments[:n], example.index, n)
        batch = self.collator.batch([tiny])
        # a cache holds no rows for this cut record (and is skipped); an online teacher runs and warms up too
        covered = self.teacher is not None and self.teacher.covers([tiny])
        self._loss_sums(batch, self.loss_module, with_teacher=covered)[0].backward()
        self.optimizer.zero_grad(set_to_none=True)

    def _optimizer_step(self, step: int, state: dict) -> dict:
        """Reduction contract: each micro-batch's loss is a sum over its supervised tokens; before the first
        backward the supervised tokens (or sequences) of all the step's micro-batches on all ranks are counted,
        and every micro-batch's sum is divided by that one number."""
        batches, step_log = self._step_batches(step, state)
        normalize = self.cfg.loss.normalize
        counts = torch.tensor([float(sum(b.num_supervised for b in batches)),
                               float(sum(b.divisor(normalize) for b in batches))], device=self.device)
        global_supervised, divisor = all_reduce_sum(counts, self.dist).tolist()
        # DDP averages gradients over ranks; scaling by world_size turns that average back into the global sum
        scale = self.dist.world_size / max(divisor, 1.0)
        sums = torch.zeros(2, device=self.device)
        bad_loss = None
        for k, batch in enumerate(batches):
            # gradients are synchronised across ranks only on the last micro-batch of the step
            with gradient_sync(self.model, enabled=k == len(batches) - 1):
                micro = self._loss_sums(batch, self.model)
                loss = micro[0] * scale
                if bad_loss is None and not torch.isfinite(loss):
                    bad_loss = f"non-finite loss {loss.item()} at step {step + 1}, micro-batch {k}, records " \
                               f"{batch.indices}"
                # backward even so: every rank must reach the gradient all-reduce, and the global gradient
                # norm below is what all ranks agree on to stop
                loss.backward()
            sums += micro[1:].detach().float()
            count_batch(state, batch, self.student_shape, self.teacher_shape)
        state["supervised_tokens"] += int(global_supervised)
        grad_norm = clip_gradients(self.loss_module, self.cfg.optim.max_grad_norm)
        if not math.isfinite(grad_norm):  # stop before the step is applied, so no checkpoint holds such weights
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingError((bad_loss or f"non-finite gradient norm {grad_norm} at step {step + 1}")
                                + "; nothing of this step was applied or saved (lower optim.lr, check the data)")
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        all_reduce_sum(sums, self.dist)
        n = max(divisor, 1.0)
        ce, kd = sums[0].item() / n, sums[1].item() / n
        if step_log.get("on_policy"):  # the teacher-student divergence on the student's own samples
            step_log["rollout_kd"] = kd
        return {"loss": combine(torch.tensor(ce), torch.tensor(kd), self.cfg.loss).item(), "ce": ce, "kd": kd,
                "grad_norm": grad_norm, "step_tokens": sum(int(b.tensors["real_tokens"].sum()) for b in batches),
                **step_log}

    def _step_batches(self, step: int, state: dict) -> tuple[list[Batch], dict]:
        """The step's micro-batches: the records' text, or on an on-policy step the student's samples of their
        prompts (``training.rollout``), with what sampling measured for the log."""
        if self.rollouts is None or not self.rollouts.on_policy(step):
            return self.plan.step_batches(step), ({"on_policy": 0} if self.rollouts is not None else {})
        # sampled without autocast: on the world's models bf16 autocast made on-policy steps 0.75x as fast (a
        # one-token decode step is bound by per-op overhead, which casting adds to); bench/precision.py --on-policy
        batches, stats = self.rollouts.step_batches(self.student, self.plan, step, self.student_shape)
        add_rollout_counts(state, stats)
        return batches, stats.log()

    def _parallel_kind(self) -> str:
        if not self.dist.enabled:
            return "single"
        return "fsdp" if self.sharded else "ddp"

    def _finish(self, state: dict, peak: int, last_val: dict, resumed_from) -> dict:
        summary = self._summary(state, peak, last_val, resumed_from)
        if self.cfg.save_every:
            self.checkpoints.save(state, self.data.fingerprint)
        self.checkpoints.save_model("final")  # a collective under FSDP: every rank takes part
        if self.dist.is_main:
            (self.out / "run_summary.json").write_text(json.dumps(summary, indent=2))
        barrier(self.dist)
        return summary

    def _summary(self, state: dict, peak: int, last_val: dict, resumed_from) -> dict:
        # token and FLOP counters are per process; supervised tokens were already counted globally
        counters = ("processed_tokens", "padded_tokens", "flops", "teacher_flops", *ROLLOUT_COUNTERS)
        summed = all_reduce_sum(torch.tensor([float(state[k]) for k in counters], dtype=torch.float64),
                                self.dist).tolist()
        totals = dict(zip(counters, summed))
        costs = {"teacher_flops": int(totals["teacher_flops"]), **rollout_summary(totals)}
        run = {"world_size": self.dist.world_size, "parallel": self._parallel_kind(),
               "teacher_sharded": is_sharded(self.teacher), "device": str(self.device),
               "resumed_from": str(resumed_from) if resumed_from else None, "resume_notes": self.resume_notes,
               "config_changes": self.config_changes, "validation_every_steps": self.eval_interval,
               "precision": self.precision,
               "precision_note": precision_note(self.cfg.precision, self.device, self.precision)}
        return run_summary(self.cfg, self.data, state, *(int(totals[k]) for k in counters[:3]), peak=peak,
                           last_val=last_val, costs=costs, run=run)

    def close(self) -> None:
        self._release_output()
        cleanup(self.dist)


def train(config: TrainConfig, given: GivenObjects | None = None) -> dict:
    """Run a training job end to end and return its run summary."""
    trainer = Trainer(config, given)
    try:
        return trainer.train()
    finally:
        trainer.close()
