"""The admin console: server-rendered pages on the controller's API listener, at ``/``.

The console is a client of the controller's own JSON API (:mod:`.apicall`): every page
asks the API in-process with the signed-in user's token, so the grants that decide what
the CLI may see and do decide what the console shows — there is no second
authorization. The token lives in an ``HttpOnly``, ``SameSite=Strict`` cookie; every
form carries a CSRF token derived from it (:mod:`.security`). Pages are Jinja2
templates with autoescaping; live regions are re-rendered by the server and fetched by
a small script (``static/console.js``) — no inline script, no build step, nothing
fetched from elsewhere. docs/admin-console.md describes the pages.
"""

from bconnect.controller.console.pages import router

__all__ = ["router"]
