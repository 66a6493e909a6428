"""The municipalities' self-service portal (Starlette): pages, forms and security; the use cases it calls live in `efa_rollout.services`."""
