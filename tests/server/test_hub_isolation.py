"""Hub isolation (issue 17, item 10): behind JupyterHub one Voila serves every user, and a user reaches only the
kernels started for them. Before: a student who knew another student's kernel id could connect to that kernel
and shut it down."""
from __future__ import annotations

import re

import pytest
from test_hub import hub  # noqa: F401 - the hub fixture (a real JupyterHub with the aisviz service)

V1 = "v1.kernel.websocket.jupyter.org"


def logged_in(url: str, user: str):
    """A requests session logged in to the hub as `user` (the demo's shared password)."""
    import requests

    session = requests.Session()
    form = session.get(f"{url}/hub/login", timeout=60)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', form.text)
    data = {"username": user, "password": "workshop-pw", **({"_xsrf": xsrf.group(1)} if xsrf else {})}
    reply = session.post(f"{url}/hub/login", data=data, timeout=60, allow_redirects=False)
    assert reply.status_code == 302 and "jupyterhub-hub-login" in session.cookies, reply.status_code
    return session


def dashboard_kernel(session, url: str) -> str:
    page = session.get(f"{url}/services/aisviz/", timeout=300)      # OAuth with the hub, then the page
    assert page.status_code == 200, page.text[:300]
    return re.search(r'"kernelId":\s*"([0-9a-f-]{36})"', page.text).group(1)


def open_websocket(session, url: str, kernel: str):
    import websocket

    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    ws_url = url.replace("http", "ws", 1) + f"/services/aisviz/api/kernels/{kernel}/channels?session_id=x"
    return websocket.create_connection(ws_url, subprotocols=[V1], cookie=cookie, timeout=60)


def test_a_hub_user_reaches_only_their_own_kernels(hub):  # noqa: F811 - the imported fixture
    import websocket

    url = hub["url"]
    alice, bob = logged_in(url, "alice"), logged_in(url, "bob")
    kernel = dashboard_kernel(alice, url)
    dashboard_kernel(bob, url)                                         # bob is logged in to the service too
    with pytest.raises(websocket.WebSocketBadStatusException, match="404"):
        open_websocket(bob, url, kernel)
    xsrf = next((c.value for c in bob.cookies if c.name == "_xsrf" and "aisviz" in (c.path or "")), "")
    assert bob.delete(f"{url}/services/aisviz/api/kernels/{kernel}", headers={"X-XSRFToken": xsrf},
                      timeout=60).status_code in (403, 404)
    assert bob.post(f"{url}/services/aisviz/voila/api/shutdown/{kernel}", timeout=60).status_code == 404
    ws = open_websocket(alice, url, kernel)                            # its owner still gets in: still running
    assert ws.getsubprotocol() == V1
    ws.close()
