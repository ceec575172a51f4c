"""Celery tasks: thin wrappers that call the pipeline. Names are explicit so moving code strands nothing."""

from celery import shared_task
from celery.signals import worker_ready

from signals_app.pipeline import signal_lane_process, signals_sweep


@shared_task(name="signals.lane_process", ignore_result=True)
def signal_lane_process_task(account_id: int, symbol: str) -> int:
    return signal_lane_process(account_id=account_id, symbol=symbol)


@shared_task(name="signals.sweep", ignore_result=True)
def signals_sweep_task() -> int:
    return signals_sweep()


@worker_ready.connect
def _sweep_at_worker_start(**_kwargs) -> None:
    # Whatever waited while no worker ran (a broker outage, a deploy) is picked up at once.
    signals_sweep_task.delay()
