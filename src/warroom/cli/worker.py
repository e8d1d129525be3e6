"""``warroom worker`` and ``warroom workflow workers|fork``: running queued workflows."""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Annotated

import typer

from warroom.cli.common import JsonOption, services_for
from warroom.cli.render import (
    checkpoint_table,
    emit_json,
    escape,
    human_time,
    reporting_errors,
    result,
    say,
    warn,
)
from warroom.cli.workflow import ExecutionIdArgument, workflow_app

__all__ = ["add_worker_commands"]

AppOption = Annotated[
    str,
    typer.Option(
        "--app",
        help="module:attribute of your AutomationEngine, whose module registers the "
        "workflows and declares the queues (e.g. myjobs.workflows:engine).",
    ),
]


def add_worker_commands(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        app_path: AppOption,
        queue: Annotated[
            list[str] | None,
            typer.Option("--queue", help="Work only this queue (repeatable); default: all."),
        ] = None,
        concurrency: Annotated[
            int, typer.Option(min=1, help="Executions this worker runs at once.")
        ] = 8,
        drain_timeout: Annotated[
            float,
            typer.Option(
                min=0,
                metavar="SECONDS",
                help="On SIGTERM or Ctrl-C, how long the executions this worker holds may "
                "run on to finish; then each still running is handed back, for another worker, "
                "at its next step.",
            ),
        ] = 30.0,
        grace: Annotated[
            float,
            typer.Option(
                min=0,
                metavar="SECONDS",
                help="Once it hands back, how long the worker waits for the steps that are "
                "running to end; then it leaves them to their leases (exit 1).",
            ),
        ] = 30.0,
    ) -> None:
        """Run queued workflow executions, take over dead workers' ones and run the scheduled
        workflows, until SIGTERM or Ctrl-C: then drain (see --drain-timeout) and stop."""
        from warroom.workflow.loading import load_engine
        from warroom.workflow.worker import Worker

        with reporting_errors(False):
            engine = load_engine(app_path)
            running = Worker(
                engine,
                queues=queue,
                concurrency=concurrency,
                grace=grace,
                drain_timeout=drain_timeout,
            )

            def stop(_signum: int, _frame: FrameType | None) -> None:
                running.stop()

            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, stop)
            queues = ", ".join(q.name for q in running.queues) or "none"
            say(
                f"worker {escape(engine.worker_id)}: queues {escape(queues)}, concurrency "
                f"{concurrency}; SIGTERM or Ctrl-C stops it"
            )
            running.run()
            say(f"worker {escape(engine.worker_id)}: stopped after {running.completed} run(s)")
            if not running.drained:
                warn("some steps were still running: their leases expire, another worker resumes")
                os._exit(1)  # the abandoned step threads must not keep the process alive
            engine.close()


@workflow_app.command("workers")
def workers(as_json: JsonOption = False) -> None:
    """Workers recorded in the catalog: state (running, draining, handing-back, stopped,
    lost), queues, executions running and completed, last heartbeat."""
    from warroom.workflow.worker import list_workers

    with services_for(as_json) as services:
        found = list_workers(services.catalog, services.workflows.lease.total_seconds())
        if as_json:
            emit_json({"workers": [info.to_dict() for info in found]})
            return
        if not found:
            say("no workers")
            return
        checkpoint_table(
            [info.to_dict() for info in found],
            [
                ("WORKER", lambda r: r["id"]),
                ("STATE", lambda r: r["state"]),
                ("QUEUES", lambda r: ",".join(r["queues"]) or "-"),
                ("ACTIVE", lambda r: f"{r['active']}/{r['concurrency']}"),
                ("DONE", lambda r: str(r["completed"])),
                ("HEARTBEAT (UTC)", lambda r: human_time(r["heartbeat_at"])),
            ],
        )


@workflow_app.command("fork")
def fork(
    execution_id: ExecutionIdArgument,
    from_step: Annotated[
        int, typer.Option("--from-step", min=0, help="The first step to run anew.")
    ],
    as_json: JsonOption = False,
) -> None:
    """A new execution replaying the steps before --from-step and running from it; a worker
    runs it (or `warroom workflow resume NEW --app ...`)."""
    with services_for(as_json) as services:
        execution_id = services.workflows.resolve_id(execution_id)
        new_id = services.workflows.fork(execution_id, from_step)
        if as_json:
            emit_json({"execution_id": new_id, "forked_from": execution_id})
        else:
            result(
                f"{new_id}: forked from {execution_id} at step {from_step}; pending for a worker"
            )
