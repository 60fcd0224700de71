"""The engine's metrics. Labels are bounded by what tenants configure (journey and node
ids, step kinds), never by profiles."""

from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

from shared.domain.journeys.instance import Effect, Instance, Step

STEPS = Counter("parcours_journey_steps_total", "Steps of journey instances",
                ["journey", "node", "kind"])
INPUTS = Counter("parcours_journey_inputs_total",
                 "Reactions, journey events and timers the engine read, by what became of"
                 " them (moved: an instance advanced; kept: held for a later wait (the early"
                 " rule); dropped: no instance waits for it; stale: its wait was resolved"
                 " otherwise; ignored: a reaction to a transactional message, or a"
                 " produced event its type does not identify)", ["kind", "outcome"])
ENTERED = Counter("parcours_journey_entered_total", "Profiles that entered a journey",
                  ["journey"])
EFFECTS = Counter("parcours_journey_effects_total", "Effects applied from the outbox",
                  ["kind", "outcome"])
TIMER_LATENESS = Histogram("parcours_journey_timer_lateness_seconds",
                           "How long after its due time a timer fired",
                           buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 30, 300))
RETRIES = Counter("parcours_journey_retries_total",
                  "Attempts repeated because PostgreSQL or Kafka was unavailable", ["what"])


HELD = Gauge("parcours_journey_held",
             "What journeys hold rather than drop: profiles held at an event entry past its"
             " rate (entries), journey messages a rule deferred (messages)", ["what"])
HELD_OLDEST = Gauge("parcours_journey_held_oldest_seconds",
                    "Age of the oldest of what journeys hold (0 when none)", ["what"])
GOALS = Counter("parcours_journey_goals_total",
                "Journey instances that reached a goal (once per instance and goal)",
                ["journey", "goal"])
GOAL_SWEEP = Histogram("parcours_journey_goal_sweep_seconds",
                       "One sweep of the goals on a profile condition (every version's)")
SPLIT = Counter("parcours_journey_split_total",
                "Profiles a split (experiment) node sent down each of its branches",
                ["journey", "node", "branch"])


def count_steps(instance: Instance, effects: Sequence[Effect]) -> None:
    for effect in effects:
        if isinstance(effect, Step):
            count_step(instance.journey_id, effect)


def count_step(journey_id: str, step: Step, n: int = 1) -> None:
    STEPS.labels(journey_id, step.node, step.kind).inc(n)
    if step.kind == "split":
        SPLIT.labels(journey_id, step.node, step.detail).inc(n)
