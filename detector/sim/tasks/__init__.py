"""Simulated models beyond the binary fraud model: ``eta`` (regression) and ``intent`` (multiclass).

Same seasonal clock and random-stream discipline as the fraud simulator (:mod:`detector.sim`);
faults that matter for these tasks: a concept change with stable inputs, a class prior drift, and
two changes of joint structure that leave every marginal intact (a correlation flip, a join that
pairs the wrong rows). See :mod:`.world` for scenarios and ground truth.

>>> sc = TaskScenario("flip", "eta", hours=2, rate_per_hour=100, faults=(TaskFault("correlation_flip", 1.0),))
>>> sc.ground_truth()[0]["kind"], sc.ground_truth()[0]["cause"]
('multivariate_drift', 'covariate_drift')
"""

from detector.sim.tasks.world import KINDS, TaskFault, TaskScenario, model_of, simulate_task, task_training

__all__ = ["KINDS", "TaskFault", "TaskScenario", "model_of", "simulate_task", "task_training"]
