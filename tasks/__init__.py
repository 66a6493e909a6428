"""Prefect tasks: thin `@task` wrappers (retries in the decorator) around the use cases in `efa_rollout.services`; `runner.TaskRunner` hands them to the orchestration."""
