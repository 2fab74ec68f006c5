"""JupyterHub for a workshop or a lab: `make hub` runs `jupyterhub -f deploy/jupyterhub_config.py`.

- Everyone logs in through the hub and lands on the shared dashboard (a hub-managed service at
  /services/aisviz/: `aisviz serve --shared --hub-auth`, light viewer kernels over the result bundles).
- Researchers also start their own JupyterLab with aisviz from the hub's home page (/hub/home).

The demo runs on one machine as the current user: DummyAuthenticator (any user name, one shared
password) and SimpleLocalProcessSpawner (each user's JupyterLab is a local process, home folders under
the state folder). SimpleLocalProcessSpawner does NOT isolate users: every JupyterLab runs as the same
system user and can read the others' homes. For a real deployment keep the service and the roles below
and swap in a real authenticator (e.g. oauthenticator's GitHub/Google/Generic OAuth, or NativeAuthenticator)
and a spawner that isolates users: DockerSpawner or KubeSpawner (one container per user, with its own
file system, memory and CPU limits: recommended), or the default LocalProcessSpawner with one system user
per hub user (separate Unix accounts; no memory limits).

Isolation on the shared dashboard: the aisviz service is one Voila for everyone, so it checks ownership
itself (`aisviz serve --hub-auth`, i.e. AisvizVoila.limit_by=user): a kernel is reachable (websocket,
/api/kernels/<id>, the shutdown beacon) only by the hub user it was started for; others get 404. Each user
may hold 4 dashboard kernels and load 20 pages a minute (aisviz serve --kernels-per-client,
--pages-per-minute).

Settings come from the environment (make hub sets them):
  AISVIZ_HUB_STATE     folder for the hub's database, cookie secret, logs and demo homes (default .hub/)
  AISVIZ_HUB_BUNDLES   the result bundles to share (default <state>/bundles; make hub precomputes it)
  AISVIZ_HUB_PASSWORD  the demo's shared password (required; make hub generates one and prints it)
  AISVIZ_HUB_PORT      where the hub listens on 127.0.0.1 (default 8000)
  AISVIZ_HUB_MAX_KERNELS  cap on dashboard kernels (default 60; each user may hold 4 of them)
  AISVIZ_HUB_SERVICE_PORT, AISVIZ_HUB_API_PORT, AISVIZ_HUB_PROXY_API_PORT  the other local ports (10101, 8081,
                       8001), to run beside another hub
"""
import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 - defined by JupyterHub when it loads this file

HERE = Path(__file__).resolve().parent
STATE = Path(os.environ.get("AISVIZ_HUB_STATE") or HERE.parent / ".hub").resolve()
BUNDLES = Path(os.environ.get("AISVIZ_HUB_BUNDLES") or STATE / "bundles").resolve()
PORT = int(os.environ.get("AISVIZ_HUB_PORT", "8000"))
SERVICE_PORT = int(os.environ.get("AISVIZ_HUB_SERVICE_PORT", "10101"))
HUB_API_PORT = int(os.environ.get("AISVIZ_HUB_API_PORT", "8081"))        # the hub's own API (JupyterHub's default)
PROXY_API_PORT = int(os.environ.get("AISVIZ_HUB_PROXY_API_PORT", "8001"))  # the proxy's API (its default)
PASSWORD = os.environ.get("AISVIZ_HUB_PASSWORD")
if not PASSWORD:
    sys.exit("jupyterhub_config: set AISVIZ_HUB_PASSWORD (the demo's shared password), or start it with `make hub`.")
(STATE / "users").mkdir(parents=True, exist_ok=True)

c.JupyterHub.bind_url = f"http://127.0.0.1:{PORT}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = HUB_API_PORT
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PROXY_API_PORT}"
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.command = [str(HERE / "node_modules" / ".bin" / "configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")
c.JupyterHub.default_url = "/services/aisviz/"       # after login: the shared dashboard

# Demo authentication: any user name with the shared password. Replace for real use (see above).
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = PASSWORD
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {"instructor"}

# Researchers: JupyterLab with aisviz, one local process per user (demo).
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = str(STATE / "users" / "{username}")
c.Spawner.default_url = "/lab"
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
if os.geteuid() == 0:             # the demo runs everything as the current user; Jupyter refuses root without this
    c.Spawner.args = ["--allow-root"]
c.Spawner.environment = {"AISVIZ_BUNDLES": str(BUNDLES)}
c.Spawner.mem_limit = "4G"        # honoured by container spawners; a reminder for local ones
c.Spawner.http_timeout = 120      # a JupyterLab start can take over 30 s on a busy small machine
c.Spawner.start_timeout = 180

# Viewers: the shared dashboard, one Voila for everyone, as a hub-managed service.
c.JupyterHub.services = [{
    "name": "aisviz",
    "display": True,
    "url": f"http://127.0.0.1:{SERVICE_PORT}",
    "oauth_no_confirm": True,
    "timeout": 180,   # seconds for Voila to start; the hub exits when a managed service is slower (default 30)
    "command": [sys.executable, "-m", "aisviz", "serve", "--shared", "--bundles", str(BUNDLES),
                "--port", str(SERVICE_PORT), "--base-url", "/services/aisviz/", "--hub-auth",
                "--max-kernels", os.environ.get("AISVIZ_HUB_MAX_KERNELS", "60")],
    "environment": {"AISVIZ_HOME": str(STATE / "aisviz-home"),
                    "AISVIZ_APP_LOG": str(STATE / "logs" / "dashboard.log"),
                    "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
}]
# Every user may open the dashboard service (and use their own server, the default "self" scopes).
c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "access:services!service=aisviz"]}]
