"""Workflow definitions: declared as classes, checked once, then frozen.

- ``declaration``: ``@step``, ``@task``, and the ``Workflow`` and ``TaskGroup`` base classes.
- ``specs``: the frozen results (``StepSpec``, ``TaskSpec``, ``Definition``,
  ``TaskGroupDefinition``) that diagrams, replay and execution all read.
- ``build``: reads a declared class, checks it and freezes it.
- ``validation``: the checks; every problem is collected and raised as one error.
- ``graph``: the declared moves, the one answer to which move is legal and what lies ahead.
"""

from statewright.definition.build import build_definition, build_task_group
from statewright.definition.declaration import TaskGroup, Workflow, step, task
from statewright.definition.graph import Edge, Graph
from statewright.definition.specs import (
    Definition,
    Handler,
    StepSpec,
    TaskGroupDefinition,
    TaskSpec,
)
from statewright.definition.validation import ENGINE_EVENTS, check_options

__all__ = [
    "ENGINE_EVENTS",
    "Definition",
    "Edge",
    "Graph",
    "Handler",
    "StepSpec",
    "TaskGroup",
    "TaskGroupDefinition",
    "TaskSpec",
    "Workflow",
    "build_definition",
    "build_task_group",
    "check_options",
    "step",
    "task",
]
