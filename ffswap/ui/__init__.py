"""`ff ui`: the version switcher in a browser. A Starlette (ASGI) app served by uvicorn
on 127.0.0.1, guarded by a random token, over the same library calls as the CLI, so
whatever a page does to facefusion.lock is what `ff rollback` or `ff lock` would do."""
