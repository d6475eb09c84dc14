"""Fixtures for testing a policy natively (``python3 -m unittest``): GPUs, jobs and rules with
every field set to what a quiet machine reports, to change where a test needs it."""

from wit_world.imports.scheduling import GpuState, PendingJob, Rules


def gpu(index, total_mib, temperature_c=None):
    """An idle, eligible GPU with all of its memory free."""
    return GpuState(
        index=index, uuid=f"GPU-{index}", name="test GPU", memory_total_mib=total_mib, memory_used_mib=0, memory_peak_mib=0, utilization_mean=0,
        temperature_c=temperature_c, power_mw=None, memory_reserved_mib=0, gantry_jobs=0, foreign_processes=0, eligible=True,
    )


def job(id, memory_mib, gpus=1):
    """A job of its own queue that needs ``gpus`` GPUs with ``memory_mib`` each."""
    return PendingJob(
        id=id, queue=id, min_gpus=gpus, max_gpus=gpus, memory_mib=memory_mib, priority=0, attempts=0, submitted_ms=id, labels=None, owner=None,
        owner_usage=0.0,
    )


def rules():
    """No margin, no sharing, no GPUs kept back."""
    return Rules(gpu_left=0, min_gpu=1, max_gpu=1, memory_margin_mib=0, allow_sharing=False, memory_save_mode=False, params=[])


def run(policy, pending, gpus, rules):
    """The policy's answer as (job, GPUs) pairs."""
    return [(p.job, p.gpus) for p in policy.place(pending, gpus, rules)]
