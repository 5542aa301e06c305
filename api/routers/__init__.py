"""One router per resource; each is built with `api.deps.role_router` (or `public_router`)."""
