"""Dependencies shared by the jobs, runners and github routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bench_server.auth.deps import Principal
from bench_server.kit.errors import Forbidden
from bench_server.tasks import TaskContext


def get_task_context(request: Request) -> TaskContext:
    return TaskContext(request.app.state.db, request.app.state.settings)


Tasks = Annotated[TaskContext, Depends(get_task_context)]


def runner_id_of(principal: Principal) -> int:
    if principal.runner_id is None:
        raise Forbidden("this request needs the token of a registered runner (POST /api/v1/runners/register)")
    return principal.runner_id
