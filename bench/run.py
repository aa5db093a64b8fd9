"""`make bench`: the service against hand-written reference handlers, measured in one run.

Everything runs on loopback on this machine: the service started as `make run` starts it
(`python -m app`, its own temporary SQLite database), the two reference servers from
bench/reference.py on the same database, and `wrk` as the load. The machine is shared and
noisy, so every speed figure is a ratio of two medians taken in alternating rounds.

`--database postgresql` (`make bench-postgres`) runs the same on a PostgreSQL database of
its own on the local server (created before, dropped after), against the PostgreSQL
ceiling, with a second service on SQLite beside it: writes and logins on PostgreSQL are
measured against that one's, alternating.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "steady load passphrase"
ME = '{"query": "{ me { username email firstname lastname avatar } }"}'
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class Load:
    """What wrk measured: requests per second and latency percentiles in milliseconds."""

    rps: float
    p50: float
    p99: float


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str

    def peak_rss_mb(self) -> float:
        return status_mb(self.process.pid, "VmHWM")

    def family(self) -> list[int]:
        """The server's process and every process descended from it (its image workers)."""
        family, index = [self.process.pid], 0
        while index < len(family):
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{family[index]}/task").iterdir():
                    with contextlib.suppress(OSError):
                        family += [int(pid) for pid in (task / "children").read_text().split()]
            index += 1
        return family

    def rss_mb(self) -> float:
        """What the server and its workers hold in memory together, now."""
        sizes = (status_mb(pid, "VmRSS") for pid in self.family())
        return sum(size for size in sizes if not math.isnan(size))

    def cpu_seconds(self) -> float:
        """CPU time the server and its workers have used so far (user and system; for
        workers that ended, what the server collected of theirs)."""
        total = 0
        for pid in self.family():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                # utime and stime, and for the server also cutime and cstime.
                counted = fields[11:15] if pid == self.process.pid else fields[11:13]
                total += sum(int(field) for field in counted)
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def status_mb(pid: int, field: str) -> float:
    """A size from /proc/PID/status (VmRSS, VmHWM) in MB; NaN once the process is gone."""
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/status").read_text()
        match = re.search(rf"{field}:\s+(\d+) kB", status)
        if match:
            return int(match.group(1)) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start(name: str, command: list[str], env: dict[str, str], port: int, log: Path) -> Server:
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    server = Server(name, process, f"http://127.0.0.1:{port}")
    wait_ready(server, "/healthz" if name.startswith("service") else "/profile")
    return server


def wait_ready(server: Server, path: str, timeout: float = 60) -> float:
    """Seconds until `path` first answers (any status below 500)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if server.process.poll() is not None:
            raise SystemExit(f"{server.name} exited with {server.process.returncode}")
        try:
            if httpx.get(server.url + path, timeout=1).status_code < 500:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.01)
    raise SystemExit(f"{server.name} did not answer {path} within {timeout} s")


def lua(directory: Path, name: str, method: str, body: str) -> Path:
    script = directory / f"{name}.lua"
    script.write_text(
        f'wrk.method = "{method}"\n'
        f"wrk.body = [[{body}]]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return script


def wrk(
    url: str, seconds: float, connections: int, cookie: str = "", script: Path | None = None
) -> Load:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    if cookie:
        command += ["-H", f"Cookie: session_id={cookie}"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    if re.search(r"Non-2xx or 3xx responses", output):
        raise SystemExit(f"wrk saw error responses from {url}:\n{output}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    percentiles = {
        int(p): float(value) * UNITS[unit]
        for p, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    }
    return Load(rps, percentiles[50], percentiles[99])


def bcrypt_seconds(rounds: int, samples: int = 5) -> float:
    salt = bcrypt.gensalt(rounds)
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        bcrypt.hashpw(b"x" * 44, salt)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def requests(load: Load, seconds: float) -> float:
    """How many requests a wrk run of `seconds` completed (never 0: the CPU per request of
    a run that completed none, on a machine too busy, is then its whole CPU time)."""
    return max(load.rps * seconds, 1.0)


def median(loads: list[Load], field: str) -> float:
    values: list[float] = [getattr(load, field) for load in loads]
    return statistics.median(values)


def database_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'bench.db'}"


# What an operator turns on to keep a line per request: the second service runs with it.
LOGGED = {"LOG_FORMAT": "json", "ACCESS_LOG": "true"}


def database_env(url: str) -> dict[str, str]:
    """The environment a server needs for the database at `url`."""
    env = {"DATABASE_URL": url, "BENCH_DATABASE_URL": url}
    if not url.startswith("sqlite"):
        from bench import postgres

        env["SECRET_KEY"] = postgres.SECRET_KEY  # required with PostgreSQL
    return env


@contextmanager
def servers(directory: Path, url: str) -> Iterator[dict[str, Server]]:
    """The service as `make run` starts it, the same with JSON access lines, and the two
    reference servers, all on the database at `url`; when that is PostgreSQL, also the
    service on a SQLite database of its own (`service_sqlite`)."""
    env = {**os.environ, **database_env(url)}
    # Messages as .eml files in the run's directory; every reset request of the bench
    # sends one (the hourly limit per account would otherwise make most of them void).
    env |= {"MAIL_DIR": str(directory / "mail"), "EMAILS_PER_ACCOUNT_PER_HOUR": "100000000"}
    # All of the bench's requests come from one address: lift the per-address limits on
    # signups and reset requests (the hostile-input feature's; ignored where absent).
    env |= {"SIGNUPS_PER_IP": "100000000", "PASSWORD_RESETS_PER_IP": "100000000"}
    env.pop("BCRYPT_ROUNDS", None)  # the default, 12, as in production
    for name in (*LOGGED, "OTEL_EXPORTER_OTLP_ENDPOINT"):
        env.pop(name, None)  # the defaults: text logs, no access log, no tracing
    log = directory / "servers.log"
    started: dict[str, Server] = {}
    try:
        command = [sys.executable, "-m", "app"]
        for name, extra, output in (
            ("service", {}, log),
            ("service_logged", LOGGED, directory / "access.log"),  # real writes to a file
        ):
            port = free_port()
            service_env = env | {"HOST": "127.0.0.1", "PORT": str(port)} | extra
            started[name] = start(name, command, service_env, port, output)
        if not url.startswith("sqlite"):
            port = free_port()
            sqlite_env = env | database_env(database_url(directory))
            sqlite_env |= {"HOST": "127.0.0.1", "PORT": str(port)}
            sqlite_env.pop("SECRET_KEY", None)
            started["service_sqlite"] = start("service_sqlite", command, sqlite_env, port, log)
        for name in ("ceiling", "orm_baseline"):
            port = free_port()
            command = [sys.executable, "-m", "uvicorn", "--factory", f"bench.reference:{name}"]
            command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
            started[name] = start(name, command, env, port, log)
        yield started
    finally:
        for server in started.values():
            if server.process.poll() is None:
                server.stop()


@dataclass
class Row:
    label: str
    figure: str
    target: str = ""
    ok: bool = True


@dataclass
class Run:
    """One benchmark run: the servers, the logged-in cookie, the wrk scripts, the settings."""

    running: dict[str, Server]
    cookie: str
    scripts: dict[str, Path]
    rounds: int
    seconds: float
    connections: int
    # PostgreSQL mode: the SQLite service's cookie (writes and logins are compared with it).
    sqlite_cookie: str = ""

    @property
    def postgres(self) -> bool:
        return "service_sqlite" in self.running

    def url(self, server: str, path: str) -> str:
        return self.running[server].url + path


def reads(run: Run) -> list[Row]:
    """GET /profile and `{ me }` against the ceiling and the ORM baseline, alternating."""
    targets = {
        "ceiling": (run.url("ceiling", "/profile"), None),
        "orm": (run.url("orm_baseline", "/profile"), None),
        "rest": (run.url("service", "/profile"), None),
        "graphql": (run.url("service", "/graphql"), run.scripts["graphql"]),
        "rest_logged": (run.url("service_logged", "/profile"), None),
    }
    for url, script in targets.values():  # warm-up
        wrk(url, 1, run.connections, run.cookie, script)
    serving = {
        "ceiling": "ceiling",
        "orm": "orm_baseline",
        "rest": "service",
        "graphql": "service",
        "rest_logged": "service_logged",
    }
    loads: dict[str, list[Load]] = {name: [] for name in targets}
    cpu: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(run.rounds):
        for name, (url, script) in targets.items():
            server = run.running[serving[name]]
            before = server.cpu_seconds()
            load = wrk(url, run.seconds, run.connections, run.cookie, script)
            loads[name].append(load)
            cpu[name].append((server.cpu_seconds() - before) / requests(load, run.seconds))
    rps = {name: median(runs, "rps") for name, runs in loads.items()}
    rows = []
    # The PostgreSQL ceiling is a harder one (asyncpg does the I/O on the event loop, as
    # the service does); its targets are the issue's.
    goals = (0.40, 0.35) if run.postgres else (0.30, 0.25)
    ceiling = "PostgreSQL ceiling" if run.postgres else "ceiling"
    for name, label, goal in (
        ("rest", "REST GET /profile", goals[0]),
        ("graphql", "GraphQL { me }", goals[1]),
    ):
        ratio = rps[name] / rps["ceiling"]
        figure = f"{ratio:.2f} ({rps[name]:,.0f} ÷ {rps['ceiling']:,.0f} req/s)"
        rows.append(Row(f"{label} ÷ {ceiling}", figure, f"≥ {goal:.2f}", ratio >= goal))
    for name, label in (("rest", "REST"), ("graphql", "GraphQL")):
        ratio = rps[name] / rps["orm"]
        figure = f"{ratio:.1f} ({rps[name]:,.0f} ÷ {rps['orm']:,.0f} req/s)"
        rows.append(Row(f"  {label} ÷ ORM baseline (for reference)", figure))
    # The server's own CPU time per request moves much less with the machine's noise than
    # requests per second do; it says where a change in the ratios comes from.
    micros = {name: statistics.median(values) * 1e6 for name, values in cpu.items()}
    names = ("ceiling", "orm", "rest", "graphql")
    figure = ", ".join(f"{name} {micros[name]:.0f}" for name in names)
    rows.append(Row("  server CPU per request, µs (for reference)", figure))
    ratio = rps["rest_logged"] / rps["rest"]
    figure = f"{ratio:.2f} ({rps['rest_logged']:,.0f} ÷ {rps['rest']:,.0f} req/s)"
    figure += f", CPU {micros['rest_logged']:.0f} µs"
    rows.append(Row("  REST, LOG_FORMAT=json ACCESS_LOG=true ÷ defaults (for reference)", figure))
    return rows


def writes(run: Run) -> list[Row]:
    """PUT /profile against the ORM baseline doing the same update, alternating (and, on
    PostgreSQL, against the service on SQLite doing the same)."""
    targets = {
        "orm": ("orm_baseline", run.cookie),
        "rest": ("service", run.cookie),
    }
    if run.postgres:
        targets["sqlite"] = ("service_sqlite", run.sqlite_cookie)
    loads: dict[str, list[Load]] = {name: [] for name in targets}
    cpu: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(run.rounds):
        for name, (server, cookie) in targets.items():
            before = run.running[server].cpu_seconds()
            load = wrk(
                run.url(server, "/profile"),
                run.seconds,
                run.connections,
                cookie,
                run.scripts["put"],
            )
            loads[name].append(load)
            cpu[name].append(
                (run.running[server].cpu_seconds() - before) / requests(load, run.seconds)
            )
    rps = {name: median(runs, "rps") for name, runs in loads.items()}
    rest, orm = rps["rest"], rps["orm"]
    figure = f"{rest / orm:.2f} ({rest:,.0f} ÷ {orm:,.0f} req/s)"
    rows = [Row("REST PUT /profile ÷ ORM baseline", figure, "≥ 0.80", rest / orm >= 0.8)]
    if run.postgres:
        ratio = rest / rps["sqlite"]
        figure = f"{ratio:.2f} ({rest:,.0f} on PostgreSQL ÷ {rps['sqlite']:,.0f} on SQLite req/s)"
        rows.append(Row("REST PUT /profile, PostgreSQL ÷ SQLite", figure, "≥ 0.80", ratio >= 0.8))
    micros = {name: statistics.median(values) * 1e6 for name, values in cpu.items()}
    figure = ", ".join(f"{name} {value:.0f}" for name, value in micros.items())
    rows.append(Row("  server CPU per PUT, µs (for reference)", figure))
    return rows


def logins(run: Run) -> list[Row]:
    """Login throughput against the CPU's limit, then GET /profile's p99 during a storm."""
    hash_seconds = bcrypt_seconds(12)
    limit = (os.cpu_count() or 1) / hash_seconds
    login_url, profile_url = run.url("service", "/login"), run.url("service", "/profile")
    script = run.scripts["login"]
    servers = ["service", "service_sqlite"] if run.postgres else ["service"]
    rates: dict[str, list[Load]] = {name: [] for name in servers}
    for _ in range(2):
        for name in servers:
            rates[name].append(wrk(run.url(name, "/login"), run.seconds * 2, 4, "", script))
    rate = median(rates["service"], "rps")
    figure = f"{rate / limit:.2f} ({rate:.1f} ÷ {limit:.1f}; one hash {hash_seconds * 1000:.0f} ms)"
    rows = [Row("logins/s ÷ (cores ÷ one hash)", figure, "≥ 0.80", rate / limit >= 0.8)]
    if run.postgres:
        on_sqlite = median(rates["service_sqlite"], "rps")
        ratio = rate / on_sqlite if on_sqlite else float("nan")
        figure = f"{ratio:.2f} ({rate:.1f} on PostgreSQL ÷ {on_sqlite:.1f} on SQLite)"
        rows.append(Row("logins/s, PostgreSQL ÷ SQLite", figure, "≥ 0.80", ratio >= 0.8))
    at_rest: list[Load] = []
    in_storm: list[Load] = []
    for _ in range(run.rounds):
        at_rest.append(wrk(profile_url, run.seconds, 4, run.cookie))
        # Four clients logging in continuously, from a second wrk, around the measurement.
        storm_seconds = f"-d{run.seconds + 2:g}s"
        storm = subprocess.Popen(
            ["wrk", "-t1", "-c4", storm_seconds, "-s", str(script), login_url],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(1)
        in_storm.append(wrk(profile_url, run.seconds, 4, run.cookie))
        storm.wait()
    rest, busy = median(at_rest, "p99"), median(in_storm, "p99")
    figure = f"{busy / rest:.2f} ({busy:.2f} ÷ {rest:.2f} ms)"
    rows.append(
        Row("p99 GET /profile in login storm ÷ at rest", figure, "≤ 3.00", busy / rest <= 3)
    )
    return rows


def signup_script(directory: Path, prefix: str) -> Path:
    """A wrk script signing up a new account per request (logins unique to this run)."""
    script = directory / f"signup-{prefix}.lua"
    script.write_text(
        "counter = 0\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        f'  local login = "{prefix}" .. counter\n'
        f'  local body = \'{{"login": "\' .. login .. \'", "password": "{PASSWORD}", '
        '"email": "\' .. login .. \'@example.com"}\'\n'
        '  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)\n'
        "end\n"
    )
    return script


def emails(run: Run, directory: Path) -> list[Row]:
    """Signups (each writes its verification message to the outbox, which the sender then
    delivers as a .eml file) and password-reset requests for a known and an unknown login,
    which must be answered alike."""
    service = run.running["service"]
    signup_url = run.url("service", "/signup")
    rates, cpu = [], []
    for i in range(2):
        before = service.cpu_seconds()
        load = wrk(signup_url, run.seconds * 2, 4, "", signup_script(directory, f"s{i}x"))
        rates.append(load.rps)
        cpu.append((service.cpu_seconds() - before) / requests(load, run.seconds * 2))
    figure = (
        f"{statistics.median(rates):.1f} (server CPU {statistics.median(cpu) * 1e3:.0f} ms each)"
    )
    rows = [Row("signups/s (for reference: bcrypt-bound)", figure)]
    forgot_url = run.url("service", "/password/forgot")
    if httpx.post(forgot_url, json={"login": "bench"}).status_code == 404:
        return rows  # a version of the service without email
    logins = {"known": "bench", "unknown": "nobody-here"}
    loads: dict[str, list[Load]] = {name: [] for name in logins}
    cpu_each: dict[str, list[float]] = {name: [] for name in logins}
    for _ in range(run.rounds):
        for name, login in logins.items():
            script = lua(directory, f"forgot-{name}", "POST", f'{{"login": "{login}"}}')
            before = service.cpu_seconds()
            load = wrk(forgot_url, run.seconds, run.connections, "", script)
            loads[name].append(load)
            cpu_each[name].append((service.cpu_seconds() - before) / requests(load, run.seconds))
    rps = {name: median(runs, "rps") for name, runs in loads.items()}
    micros = {name: statistics.median(values) * 1e6 for name, values in cpu_each.items()}
    figure = (
        f"known {rps['known']:,.0f} (CPU {micros['known']:.0f} µs each, sending included), "
        f"unknown {rps['unknown']:,.0f} (CPU {micros['unknown']:.0f} µs)"
    )
    rows.append(Row("reset requests/s", figure))
    known, unknown = probe(forgot_url, logins["known"], logins["unknown"])
    ratio = unknown / known
    figure = f"{ratio:.2f} ({unknown:.2f} ÷ {known:.2f} ms)"
    rows.append(
        Row("  one request's time, unknown ÷ known", figure, "0.9 to 1.1", 0.9 <= ratio <= 1.1)
    )
    return rows


def probe(url: str, known: str, unknown: str, samples: int = 150) -> tuple[float, float]:
    """Median milliseconds of one reset request, as a prober timing single requests sees
    them: known and unknown logins alternate, each after a pause in which the previous
    request's background work (the sender) is done."""
    times: dict[str, list[float]] = {known: [], unknown: []}
    with httpx.Client() as client:
        for i in range(samples * 2):
            login = (known, unknown)[i % 2]
            started = time.perf_counter()
            assert client.post(url, json={"login": login}).status_code == 200
            times[login].append((time.perf_counter() - started) * 1000)
            time.sleep(0.05)
    return statistics.median(times[known]), statistics.median(times[unknown])


def startup(directory: Path, url: str) -> Row:
    """Seconds from process start to the first 200 from /healthz, on the existing database."""
    times = []
    for _ in range(3):
        port = free_port()
        env = {**os.environ, **database_env(url), "PORT": str(port)}
        with (directory / "startup.log").open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=out, stderr=out
            )
        server = Server("service", process, f"http://127.0.0.1:{port}")
        times.append(wait_ready(server, "/healthz"))
        server.stop()
    seconds = statistics.median(times)
    return Row("start-up to first /healthz 200", f"{seconds:.2f} s", "< 2 s", seconds < 2)


def common_password_check() -> Row:
    """The cost of the password rules (common-password lookup included) at 1,024 characters."""
    from core import rules

    value = "correct horse battery staple " * 35
    value = value[:1024]
    runs = 2000
    started = time.perf_counter()
    for _ in range(runs):
        rules.password(value, login="someone", email="someone@example.com")
    micros = (time.perf_counter() - started) / runs * 1e6
    return Row("password rules on 1,024 characters (for reference)", f"{micros:.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per figure")
    parser.add_argument("--seconds", type=float, default=3, help="length of one wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--only", choices=["emails"], help="run only these figures (signups, reset requests)"
    )
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="postgresql: a database of its own on the local server (make bench-postgres)",
    )
    args = parser.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="accounts-bench-") as tmp, ExitStack() as stack:
        directory = Path(tmp)
        url = database_url(directory)
        if args.database == "postgresql":
            from bench import postgres

            url = stack.enter_context(postgres.database())
        with servers(directory, url) as running:
            service = running["service"]
            body = {"login": "bench", "password": PASSWORD, "email": "bench@example.com"}
            cookie = httpx.post(f"{service.url}/signup", json=body, timeout=60).cookies[
                "session_id"
            ]
            sqlite_cookie = ""
            if "service_sqlite" in running:
                signup = f"{running['service_sqlite'].url}/signup"
                sqlite_cookie = httpx.post(signup, json=body, timeout=60).cookies["session_id"]
            # The login storm signs in as another account: each login starts a session, and
            # past SESSIONS_PER_USER the bench's own session would be the one ended.
            storm = {"login": "storm", "password": PASSWORD, "email": "storm@example.com"}
            for server in ("service", "service_sqlite"):
                if server in running:
                    httpx.post(f"{running[server].url}/signup", json=storm, timeout=60)
            credentials = f'{{"login": "storm", "password": "{PASSWORD}"}}'
            scripts = {
                "graphql": lua(directory, "graphql", "POST", ME),
                "put": lua(directory, "put", "PUT", '{"firstname": "Bench"}'),
                "login": lua(directory, "login", "POST", credentials),
            }
            run = Run(
                running, cookie, scripts, args.rounds, args.seconds, args.connections, sqlite_cookie
            )
            if args.only != "emails":
                rows += reads(run) + writes(run) + logins(run)
            rows += emails(run, directory)
            peak = service.peak_rss_mb()
            rows.append(Row("peak RSS of the service", f"{peak:.0f} MB", "< 150 MB", peak < 150))
        if args.only != "emails":
            rows.append(startup(directory, url))
    if args.only != "emails" and args.database == "sqlite":
        rows.append(common_password_check())
        # Last, on a service of its own: its attacks must not colour the figures above.
        # (It runs on SQLite: what it measures is the HTTP and GraphQL layers' defences.)
        from bench import hostile

        with tempfile.TemporaryDirectory(prefix="accounts-hostile-") as tmp:
            rows += hostile.scenario(Path(tmp), args.seconds)

    print(
        f"\n{args.database}: {args.rounds} rounds of {args.seconds:g} s each, "
        f"wrk -t1 -c{args.connections}, "
        f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}\n"
    )
    print_rows(rows)


def print_rows(rows: list[Row]) -> None:
    width = max(len(row.label) for row in rows)
    figure_width = max(len(row.figure) for row in rows)
    for row in rows:
        mark = "" if not row.target else ("ok" if row.ok else "MISSED")
        print(f"{row.label:<{width}}  {row.figure:<{figure_width}}  {row.target:<8}  {mark}")


if __name__ == "__main__":
    main()
