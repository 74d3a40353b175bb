"""The servers under test and their matched configurations.

A server is a family (corral, gunicorn, granian, uwsgi, waitress, apache) in a layout:
  p2  2 single-threaded processes   corral prefork -w 2 | gunicorn sync -w 2 | granian --workers 2
                                    --blocking-threads 1 | uwsgi --processes 2 | mod_wsgi processes=2
  t8  1 process x 8 threads         corral worker -w 1 --threads 8 | gunicorn gthread 1x8 | granian
                                    1x8 | uwsgi 1x8 | waitress --threads 8 | mod_wsgi 1x8
  mN  N single-threaded processes   (memory scenario, N = 1 and 4; waitress has no such layout)
Every server listens on 127.0.0.1 only, with a listen backlog of 2048 (where settable), no access
log, and runs the app from bench/apps with the bench venv's packages.
"""
import os
import shutil
from dataclasses import dataclass

FAMILIES = ["corral", "granian", "gunicorn", "uwsgi", "waitress", "apache"]
MOD_WSGI = "/usr/lib/apache2/modules/mod_wsgi.so"


@dataclass
class Paths:
    bench: str
    root: str
    tmp: str  # short private directory (Apache's sockets, pid file)

    @property
    def venv(self):
        return os.path.join(self.bench, ".venv")

    @property
    def apps(self):
        return os.path.join(self.bench, "apps")

    @property
    def corral(self):
        return os.path.join(self.root, "target", "release", "corral")

    def bin(self, name):
        return os.path.join(self.venv, "bin", name)

    def site_packages(self):
        lib = os.path.join(self.venv, "lib")
        return os.path.join(lib, sorted(os.listdir(lib))[0], "site-packages")


@dataclass
class Server:
    family: str
    procs: int
    threads: int
    extra: tuple = ()  # options beyond the matched layout, shown in the label

    @property
    def id(self):
        return f"{self.family}-{self.procs}x{self.threads}"

    @property
    def label(self):
        kind = {"corral": "prefork" if self.threads == 1 else "worker",
                "gunicorn": "sync" if self.threads == 1 else "gthread",
                "apache": "mod_wsgi daemon"}.get(self.family, "")
        name = "Apache" if self.family == "apache" else self.family
        more = f" ({' '.join(self.extra)})" if self.extra else ""
        return f"{name} {kind} {self.procs}x{self.threads}{more}".replace("  ", " ")


def layout(group):
    """(processes, threads) of a group name: p2, t8, m1, m4, ..."""
    if group == "t8":
        return 1, 8
    return int(group[1:]), 1


def servers_for(group, families):
    procs, threads = layout(group)
    return [Server(f, procs, threads, extra_options(f, group)) for f in families
            if not (f == "waitress" and procs > 1)]


def extra_options(family, group):
    """corral shares what the app builds on its first request when asked (--warmup /: one GET
    in the zygote before the fork); the memory scenario measures that. No peer has it."""
    return ("--warmup", "/") if family == "corral" and group.startswith("m") else ()


def availability(paths, notes_file):
    """{family: None if usable else the reason it is skipped}."""
    notes = open(notes_file).read().splitlines() if os.path.exists(notes_file) else []

    def why(word, default):
        said = [n for n in notes if word in n]
        return "; ".join(said) if said else default
    out = {}
    out["corral"] = None if os.access(paths.corral, os.X_OK) else "no target/release/corral (build failed?)"
    for fam, exe in (("gunicorn", "gunicorn"), ("granian", "granian"), ("uwsgi", "uwsgi"), ("waitress", "waitress-serve")):
        out[fam] = None if os.access(paths.bin(exe), os.X_OK) else why(fam, f"{exe} not in bench/.venv")
    if not os.access("/usr/sbin/apache2", os.X_OK) or not os.path.exists(MOD_WSGI):
        out["apache"] = why("apt", "Apache httpd and/or mod_wsgi not installed (apt-get install apache2 libapache2-mod-wsgi-py3)")
    else:
        out["apache"] = None
    return out


def command(srv, app_module, port, paths, rundir):
    """(argv, cwd) to start `srv` serving `app_module` (e.g. "hello", "djbench.wsgi") on port."""
    p, t = srv.procs, srv.threads
    target = f"{app_module}:application"
    if srv.family == "corral":
        mpm = ["--mpm", "prefork", "-w", str(p)] if t == 1 else ["--mpm", "worker", "-w", str(p), "--threads", str(t)]
        return [paths.corral, "serve", target, "-b", f"127.0.0.1:{port}", *mpm, "--chdir", paths.apps,
                "--virtualenv", paths.venv, "--backlog", "2048", "--log-level", "warning",
                *srv.extra], paths.apps
    if srv.family == "gunicorn":
        kind = ["-k", "sync", "-w", str(p)] if t == 1 else ["-k", "gthread", "-w", str(p), "--threads", str(t)]
        return [paths.bin("gunicorn"), *kind, "-b", f"127.0.0.1:{port}", "--backlog", "2048",
                "--log-level", "warning", target], paths.apps
    if srv.family == "granian":
        return [paths.bin("granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(p), "--blocking-threads", str(t), "--backlog", "2048",
                "--log-level", "warning", target], paths.apps
    if srv.family == "uwsgi":
        thr = ["--threads", str(t)] if t > 1 else []
        return [paths.bin("uwsgi"), "--http-socket", f"127.0.0.1:{port}", "--master", "--processes", str(p),
                *thr, "--home", paths.venv, "--chdir", paths.apps, "--module", app_module,
                "--callable", "application", "--need-app", "--die-on-term", "--disable-logging",
                "--listen", str(min(2048, _somaxconn()))], paths.apps
    if srv.family == "waitress":
        return [paths.bin("waitress-serve"), f"--listen=127.0.0.1:{port}", f"--threads={t}",
                "--backlog=2048", "--connection-limit=2048", target], paths.apps
    if srv.family == "apache":
        conf = apache_conf(srv, app_module, port, paths, rundir)
        return ["/usr/sbin/apache2", "-f", conf, "-DFOREGROUND"], rundir
    raise ValueError(srv.family)


def _somaxconn():
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return int(f.read())
    except OSError:
        return 128


def apache_conf(srv, app_module, port, paths, rundir):
    """Writes a private httpd.conf: event MPM (1 child x 128 threads) in front of mod_wsgi daemon
    processes (processes=P threads=T). Debian's mod_wsgi embeds Debian's CPython 3.11; the app
    and the venv's site-packages are put on its path."""
    os.makedirs(rundir, exist_ok=True)
    os.chmod(rundir, 0o755)
    script = os.path.join(paths.apps, *app_module.split(".")) + ".py"
    conf = os.path.join(rundir, "httpd.conf")
    with open(conf, "w") as f:
        f.write(f"""# private config written by corral bench/harness/servers.py ({srv.id}, {app_module})
ServerRoot /etc/apache2
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
ListenBacklog 2048
PidFile {rundir}/httpd.pid
ErrorLog {rundir}/error.log
LogLevel warn
DefaultRuntimeDir {rundir}
Mutex file:{rundir} default
User www-data
Group www-data
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule wsgi_module {MOD_WSGI}
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 15
Timeout 30
StartServers 1
ServerLimit 1
ThreadLimit 128
ThreadsPerChild 128
MaxRequestWorkers 128
MinSpareThreads 1
MaxSpareThreads 128
WSGISocketPrefix {rundir}/wsgi
WSGIRestrictEmbedded On
WSGIDaemonProcess bench processes={srv.procs} threads={srv.threads} python-path={paths.apps}:{paths.site_packages()} listen-backlog=2048 queue-timeout=30
WSGIProcessGroup bench
WSGIApplicationGroup %{{GLOBAL}}
WSGIScriptAlias / {script}
<Directory {paths.apps}>
  Require all granted
</Directory>
""")
    return conf


def versions(paths):
    """Versions of the servers and frameworks, for the report."""
    from . import machine
    out = {}
    if os.access(paths.corral, os.X_OK):
        out["corral"] = machine.command([paths.corral, "--version"])
    py = paths.bin("python")
    out["python (venv, corral)"] = machine.command([py, "-c", "import sys; print(sys.version.split()[0], sys.executable)"])
    out["packages"] = machine.command([py, "-c", (
        "import importlib.metadata as m\n"
        "for n in ('gunicorn','granian','uWSGI','waitress','Flask','Werkzeug','Django'):\n"
        "  try: print(n, m.version(n))\n"
        "  except Exception: print(n, '-')")]).replace("\n", ", ")
    if shutil.which("/usr/sbin/apache2"):
        out["apache"] = machine.command(["/usr/sbin/apache2", "-v"]).splitlines()[0]
        out["mod_wsgi python"] = "Debian's " + machine.command(["/usr/bin/python3", "--version"])
    return out
