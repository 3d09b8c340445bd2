"""The epoch loop of ``fit``: data, model and step in, a finished run directory out.

``Trainer.run()``: open the split (``fetch.open_splits``: the store's fingerprint recorded or checked), decide what
to do with the run directory (``rundir.prepare``), build what the config trains (``step.build``), restore
``last.pt`` when resuming (or create the fresh directory: ``rundir.start_fresh``), then per epoch: the epoch's
batches (``epoch_order``, this process's share of each global batch), one ``TrainStep`` per batch, checkpoints every
``checkpoint_every_steps`` and at the end of the epoch, the learning-rate decay, the test evaluation (after the BN
statistics are recomputed, ``bnstats``, unless ``bn_stats="running"``),
``metrics.jsonl``, the epoch's log line and TensorBoard scalars (``progress``); finally ``result.json``. Around the
steps: stop signals (a checkpoint, then ``TrainingInterrupted``), non-finite losses (``NonFiniteLossError``, the
last good checkpoint kept) and, for tests, injected faults (``signals.Fault``).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import signal
import time
import warnings
from typing import Any

import numpy as np
import torch

from slnl.data.sampling import epoch_order
from slnl.engine import bnstats
from slnl.engine import checkpoint as ckpt
from slnl.engine import distributed as D
from slnl.engine.config import TrainConfig, _plain, save_config
from slnl.engine.device import device_name
from slnl.engine.evaluation import run_eval
from slnl.engine.fetch import fetchers, open_splits, rank_positions, to_device
from slnl.engine.metrics import BN_MODES, TEST, write_metrics
from slnl.engine.progress import Clock, Scalars, bar, epoch_line
from slnl.engine.rundir import RESULT_SCHEMA_VERSION, Result, RunResult, check_store, prepare, start_fresh
from slnl.engine.signals import Fault, StopSignals, TrainingInterrupted
from slnl.engine.step import HEADS, SUMS, NonFiniteLossError, TrainStep, build, first_nonfinite
from slnl.utils import atomic_write_json, git_commit, software_versions

log = logging.getLogger("slnl.engine")


class Trainer:
    def __init__(self, cfg: TrainConfig, device: torch.device, info: D.DistInfo):
        self.cfg, self.device, self.info = cfg, device, info
        self.t_start = time.time()
        self.commit = git_commit()  # recorded in result.json and in every checkpoint

    # ------------------------------------------------------------------------------------------------ run
    def run(self) -> Result:
        cfg, info = self.cfg, self.info
        self.train_ds, self.test_ds, self.steps_per_epoch = open_splits(cfg, info)
        action, self.run_dir = prepare(cfg, info)
        if action == "finished":
            log.info("%s is finished; returning its result.json", self.run_dir)
            return Result.load(self.run_dir)
        self.t = build(cfg, self.device, info)
        self.model_config = dataclasses.asdict(self.t.model.config)
        self.step_fn = TrainStep(self.t, cfg.accum_steps, cfg.sync_every)
        self.data_mode, self.train_fetch, self.test_fetch = fetchers(self.train_ds, self.test_ds, self.device,
                                                                     cfg.data_mode, info)
        self.epoch, self.step, self.global_step = 0, 0, 0
        self.history: list[dict[str, Any]] = []
        self.last_eval: dict[str, Any] | None = None
        self.sums = torch.zeros(len(SUMS), dtype=torch.float64, device=self.device)  # this epoch's, so far
        self.train_time = 0.0
        self.heads_seen: set[str] = set()
        if action == "resume":
            self._restore()
        else:
            start_fresh(self.run_dir, info)  # only now: a run refused while starting leaves no directory behind
        if info.is_main:
            save_config(cfg, self.run_dir / "config.yaml", self.model_config)
            write_metrics(self.run_dir, self.history)  # agrees with the checkpoint we continue from
        self.fault = Fault(info.rank)
        self.clock = Clock(cfg.epochs, self.steps_per_epoch)
        self.scalars = Scalars(self.run_dir, self.epoch) if cfg.tensorboard and info.is_main else None
        log.info("%s: epochs %d-%d of %d, %d steps of %d samples each, %s, %s", self.run_dir, self.epoch + 1,
                 cfg.epochs, cfg.epochs, self.steps_per_epoch, cfg.batch_size, self.device, self.t.precision)
        try:
            with StopSignals() as stop:
                self.stop = stop
                while self.epoch < cfg.epochs:
                    self._train_epoch()
            return self._finish()
        finally:
            if self.scalars is not None:
                self.scalars.close()

    def _train_epoch(self) -> None:
        cfg, S, B = self.cfg, self.steps_per_epoch, self.cfg.batch_size
        self.train_ds.set_epoch(self.epoch)
        order = epoch_order(len(self.train_ds), cfg.seed, self.epoch)
        pos_lists = [rank_positions(order, s, B, self.info) for s in range(self.step, S)]
        lr = self.t.opt.param_groups[0]["lr"]
        first_step = self.step  # a resumed epoch runs from here
        bar = self._progress(S * B, self.step * B)
        t_mark = time.perf_counter()
        self.t.net.train()
        self.step_fn.new_epoch()
        deferred = cfg.sync_every > 1
        for x, y in self.train_fetch.batches(pos_lists, cfg.num_workers):
            n = self.global_step + 1  # this step's number in the run
            res = self.step_fn(*to_device(x, y, self.device), global_step=n, stop=self.stop.signum > 0,
                               poison=self.fault.poison(n))
            if res.nonfinite is not None:
                self._nonfinite(res.nonfinite, self.step + 1, n)
            self.sums += res.sums
            self.heads_seen.update(res.heads)
            self.step, self.global_step = self.step + 1, n
            stop = res.stop
            checkpoint_due = (cfg.checkpoint_every_steps and n % cfg.checkpoint_every_steps == 0 and self.step < S)
            if deferred and (self.step % cfg.sync_every == 0 or self.step == S or checkpoint_due or stop):
                stop = self._sync_point()
            now = time.perf_counter()
            self.train_time += now - t_mark
            if bar is not None:
                bar.update(B)
                if not deferred or self.step % cfg.sync_every == 0:  # the loss shown costs a synchronisation
                    bar.set_postfix(loss=f"{float(res.loss):.4f}", refresh=False)
            if stop:
                self._interrupt(bar)
            if checkpoint_due:
                self._checkpoint()
            self.fault.after_step(n)
            t_mark = time.perf_counter()  # checkpoint time is not training time
        if bar is not None:
            bar.close()
        self._end_epoch(lr, S - first_step)

    def _end_epoch(self, lr: float, steps_run: int) -> None:
        cfg, info = self.cfg, self.info
        sums = D.all_reduce_sum(self.sums.clone(), info).cpu()
        n = max(float(sums[5]), 1.0)
        train = {
            "loss": {"total": float(sums[0]) / n,
                     **{h: (float(sums[1 + k]) / n if h in self.heads_seen else None) for k, h in enumerate(HEADS)}},
            "top1": float(sums[4]) / n, "samples": int(sums[5]), "steps": self.steps_per_epoch,
        }
        with warnings.catch_warnings():
            # A run resumed from a checkpoint written after the epoch's last step calls sched.step() with no
            # optimizer.step() in this process; torch warns about an order that is correct here.
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
            self.t.sched.step()
        test, eval_time, both = None, 0.0, {}
        if (self.epoch + 1) % cfg.eval_every == 0 or self.epoch + 1 == cfg.epochs:
            t = time.perf_counter()
            D.broadcast_buffers(self.t.model, info)  # every process evaluates rank 0's BN statistics
            # Both BN evaluations, the headline (cfg.bn_stats) and the other beside it: training's running averages
            # first, then statistics recomputed from the training clips — in place when they are the headline
            # (training goes on from them), else on a snapshot restored afterwards (training never sees them).
            evals = {"running": self._evaluate()}
            saved = None if cfg.bn_stats == "recompute" else bnstats.snapshot(self.t.model)
            self._recompute_bn()
            evals["recomputed"] = self._evaluate()
            if saved is not None:
                bnstats.restore(self.t.model, saved)
            eval_time = time.perf_counter() - t
            summary = evals["recomputed" if cfg.bn_stats == "recompute" else "running"]
            self.last_eval = {**summary, "epoch": self.epoch + 1}
            test = {k: summary[k] for k in ("top1", "top5", "loss", "n")}
            both = {f"{TEST}_{mode}": {k: e[k] for k in ("top1", "top5", "loss")} for mode, e in evals.items()}
        entry = {
            "epoch": self.epoch + 1, "lr": lr, "train": train, TEST: test, **both,
            "epoch_time_s": self.train_time + eval_time, "train_time_s": self.train_time, "eval_time_s": eval_time,
            "samples_per_s": train["samples"] / self.train_time if self.train_time > 0 else None,
        }
        self.history.append(entry)
        # Position: epoch done, next is step 0 of the next epoch; per-epoch sums start again.
        self.epoch, self.step = self.epoch + 1, 0
        self.sums.zero_()
        self.train_time = 0.0
        self._checkpoint()
        if info.is_main:
            write_metrics(self.run_dir, self.history)
            if self.scalars is not None:
                self.scalars.epoch(entry)
            log.info(epoch_line(entry, cfg.epochs, *self.clock.epoch_done(entry["epoch"], steps_run)))
        if self.stop.signum:
            self._interrupt(None)

    def _evaluate(self) -> dict[str, Any]:
        """The test subset's counts with the model's BN statistics as they are (``acc.summary()``; the losses of heads
        this model lacks are None)."""
        acc = run_eval(self.t.eval_net, self.test_fetch, len(self.test_ds), self.cfg.eval_batch_size, self.device,
                       self.t.precision, self.t.loss_fn, self.test_ds.num_classes, self.info, self.t.mark_step)
        summary = acc.summary()
        summary["loss"] = {h: (v if h == "total" or h in self.heads_seen else None) for h, v in summary["loss"].items()}
        return summary

    def _recompute_bn(self) -> None:
        """BN statistics of the training clips' central crops, dropout off (``bnstats``: why): the same clips at every
        evaluation, so the curve's points differ only by the weights."""
        self.train_ds.train = False  # both fetchers crop by the dataset's flag: evaluation's central crop
        try:
            bnstats.recompute(self.t.model, self.train_fetch, bnstats.stats_positions(len(self.train_ds),
                              self.info.world_size), self.cfg.eval_batch_size, self.device, self.t.precision,
                              self.info, self.t.mark_step)
        finally:
            self.train_ds.train = True

    # ------------------------------------------------------------------------------------------------ stops
    def _progress(self, total: int, initial: int):
        if not self.info.is_main:
            return None
        return bar(self.cfg.progress, total, initial, f"epoch {self.epoch + 1}/{self.cfg.epochs}")

    def _sync_point(self) -> bool:
        """sync_every > 1: raise for the epoch's first non-finite step, if any; return whether to stop."""
        bad_step, bad_loss, stop = self.step_fn.check(self.stop.signum > 0)
        if bad_step:
            later = self.global_step - bad_step
            note = "" if not later else (
                f" (reported at step {self.step}: the loss is checked every {self.cfg.sync_every} steps; the "
                f"non-finite step was skipped on the device, the {later} after it were taken)")
            self._nonfinite(bad_loss, self.step - later, bad_step, note=note)
        return stop

    def _nonfinite(self, value: Any, step: int, global_step: int, note: str = "") -> None:
        msg = (f"non-finite training step (its loss or a gradient held NaN or inf; loss {float(value)}) at epoch {self.epoch + 1}, step {step} "
               f"(global step {global_step}) of {self.run_dir}; the optimiser step was not taken and the "
               f"last good checkpoint {self.run_dir / ckpt.FILE} is kept{note}. Try a lower lr or precision='fp32'.")
        log.error(msg)
        D.barrier(self.info)
        raise NonFiniteLossError(msg)

    def _interrupt(self, bar) -> None:
        if bar is not None:
            bar.close()
        self._checkpoint()
        D.barrier(self.info)  # no process exits before rank 0 has written the checkpoint
        signum = self.stop.signum or signal.SIGTERM
        msg = (f"{signal.Signals(signum).name}: stopped at epoch {self.epoch + 1}, step {self.step} of "
               f"{self.steps_per_epoch}; checkpoint written to {self.run_dir / ckpt.FILE} (resume with resume=True)")
        log.warning(msg)
        raise TrainingInterrupted(msg, int(signum), self.run_dir)

    # ------------------------------------------------------------------------------------------------ state
    def _checkpoint(self) -> None:
        """``last.pt``: everything a resumed run needs to continue bit for bit. A collective: every process calls it
        (each contributes its RNG state and partial sums); rank 0 writes. Weights with a NaN or ±inf are never
        written: every process raises ``NonFiniteLossError`` instead, and the last good checkpoint is kept."""
        bad = D.broadcast_object(first_nonfinite(self.t.model) if self.info.is_main else None, self.info)
        if bad is not None:
            msg = (f"{self.run_dir / ckpt.FILE} not written: the model's {bad} is NaN or ±inf after global step "
                   f"{self.global_step}; the last good checkpoint is kept. Try a lower lr or precision='fp32'.")
            log.error(msg)
            raise NonFiniteLossError(msg)
        mine = {"rng": ckpt.rng_state(self.device), "sums": self.sums.cpu().clone(), "train_time": self.train_time,
                "heads": sorted(self.heads_seen)}
        per_rank = D.all_gather_object(mine, self.info)
        if self.info.is_main:
            t = self.t
            state = {
                "model": t.model.state_dict(), "optimizer": t.opt.state_dict(), "scheduler": t.sched.state_dict(),
                "scaler": t.scaler.state_dict() if t.scaler else None,
                "epoch": self.epoch, "step": self.step, "global_step": self.global_step,
                "per_rank": per_rank, "history": self.history, "last_eval": self.last_eval,
                "config": self.cfg.to_dict(), "world_size": self.info.world_size, "saved_at": time.time(),
                "git_commit": self.commit,
            }
            ckpt.save(state, self.run_dir / ckpt.FILE)

    def _restore(self) -> None:
        path = self.run_dir / ckpt.FILE
        state, error = None, None
        if self.info.is_main and path.is_file():
            try:
                state = ckpt.load(path)
            except ckpt.CheckpointError as e:
                error = str(e)
        state, error = D.broadcast_object((state, error), self.info)  # every process raises, none waits
        if error is not None:
            raise ckpt.CheckpointError(error)
        if state is None:
            return
        # config.yaml was checked against the store (rundir.prepare); the checkpoint must be of the same data too.
        check_store(TrainConfig.from_dict(state["config"], source=f"{path} (config)"), f"checkpoint {path}",
                    self.cfg.data)
        t = self.t
        ckpt.load_weights(t.model, state, path)
        # The implementation flags (fused / foreach) are how this session runs, not what was trained: a run may be
        # resumed with another sync_every / fused_adam. load_state_dict would take them from the checkpoint.
        saved_opt = state["optimizer"]
        saved_opt["param_groups"] = [{**g, **{k: cur[k] for k in ("fused", "foreach") if k in cur}}
                                     for g, cur in zip(saved_opt["param_groups"], t.opt.param_groups)]
        t.opt.load_state_dict(saved_opt)
        t.sched.load_state_dict(state["scheduler"])
        if t.scaler is not None and state.get("scaler"):
            t.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step, self.global_step = state["epoch"], state["step"], state["global_step"]
        self.history, self.last_eval = state["history"], state.get("last_eval")
        per_rank = state["per_rank"]
        if len(per_rank) == self.info.world_size:
            mine = per_rank[self.info.rank]
            ckpt.set_rng_state(mine["rng"], self.device)
            self.sums = mine["sums"].to(self.device)
        else:
            # Different number of processes: data order and crops are unchanged (pure functions of seed, epoch,
            # step); only the dropout streams differ from an uninterrupted run. Partial-epoch sums go to rank 0.
            log.warning("resuming a %d-process checkpoint with %d processes: not bit-identical to an "
                        "uninterrupted run (dropout random streams differ)", len(per_rank), self.info.world_size)
            total = sum(r["sums"] for r in per_rank)
            self.sums = (total if self.info.is_main else torch.zeros_like(total)).to(self.device)
        self.train_time = per_rank[0]["train_time"]
        self.heads_seen = set(per_rank[0]["heads"])
        log.info("resumed %s at epoch %d, step %d (global step %d)", self.run_dir, self.epoch + 1, self.step,
                 self.global_step)

    # ------------------------------------------------------------------------------------------------ result
    def _finish(self) -> Result:
        cfg, info, dev = self.cfg, self.info, self.device
        ev = self.last_eval
        if ev is None or ev["epoch"] != cfg.epochs:
            raise RuntimeError(f"{self.run_dir}: the run ended without a final evaluation (internal error)")
        result: RunResult = {
            "schema": RESULT_SCHEMA_VERSION,
            "top1": ev["top1"], "top5": ev["top5"], "bn_stats": cfg.bn_stats,
            "by_bn_stats": {mode: {k: self.history[-1][f"{TEST}_{mode}"][k] for k in ("top1", "top5")}
                            for mode in BN_MODES},
            "last_epoch": cfg.epochs, "epochs": cfg.epochs,
            "n_test": ev["n"], "n_train": len(self.train_ds), "split": cfg.split,
            "dataset": self.train_ds.meta.get("dataset"), "store": cfg.data, "store_fingerprint": cfg.store_fingerprint,
            "per_class_accuracy": ev["per_class_accuracy"], "class_names": list(self.train_ds.class_names),
            "confusion": ev["confusion"], "test_loss": ev["loss"],
            "metrics": self.history,
            "config": cfg.to_dict(), "model_config": _plain(self.model_config), "num_params": self.t.num_params,
            "timings": {
                "train_s": sum(h["train_time_s"] for h in self.history),
                "eval_s": sum(h["eval_time_s"] for h in self.history),
                "wall_s": time.time() - self.t_start,
                "samples_per_s": float(np.mean([h["samples_per_s"] for h in self.history if h["samples_per_s"]]))
                if self.history else None,
            },
            "software": software_versions(), "git_commit": self.commit,
            "device": {
                "type": dev.type, "name": device_name(dev), "count": info.world_size, "world_size": info.world_size,
                "precision": self.t.precision, "data_mode": self.data_mode, "torch_threads": torch.get_num_threads(),
                # the CPU kernels' instruction set (AVX2, AVX512, …): float results repeat bit for bit only on the same
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            },
            "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        if info.is_main:
            atomic_write_json(self.run_dir / "result.json", result)
        D.barrier(info)
        return Result.from_result(result, self.run_dir)
