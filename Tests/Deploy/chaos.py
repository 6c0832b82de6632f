"""A chaos run on the process topology: its own PostgreSQL and Redis, two replicas of every
service, nginx in front, and `circle-bench chaos` as the load (CircleKit clients in a group and in
1:1 pairs, sending, uploading, changing presence). While the load runs, a random replica is
SIGKILLed every 20 s and started again, Redis is restarted twice and PostgreSQL twice (immediate
shutdown: no checkpoint, recovery at start). The clients then check that nothing acknowledged was
lost or repeated and measure each fault's catch-up (see ChaosBench.swift).

    python3 Tests/Deploy/chaos.py --seconds 600      (scripts/chaos.sh [minutes] runs this)

Everything started here runs under `timeout` and is stopped by pid at the end."""
import argparse
import base64
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from processes import Process, executable, free_port, nginx_config, sigkill, wait_ready  # noqa: E402

SERVICES = ["gateway", "messaging", "vault", "presence", "signaling", "cleanup"]
REPLICAS = 2
KILL_EVERY = 20


def pg_bin(name):
    return sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))[-1]


class Postgres:
    """A throwaway PostgreSQL that can be crashed (immediate shutdown) and started again on its port."""

    def __init__(self, folder: Path, lifetime: int):
        self.folder, self.lifetime, self.port = folder, lifetime, free_port()
        self.as_pg = []
        if os.getuid() == 0:
            subprocess.run(["useradd", "--system", "--home-dir", "/var/lib/postgresql", "--shell", "/bin/bash", "postgres"],
                           capture_output=True)
            self.as_pg = ["runuser", "-u", "postgres", "--"]
        folder.mkdir(parents=True)
        if os.getuid() == 0:
            shutil.chown(folder, "postgres")
        subprocess.run([*self.as_pg, pg_bin("initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        self.process = None
        self.start()

    @property
    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self):
        self.process = Process([*self.as_pg, pg_bin("postgres"), "-D", self.folder / "data", "-p", self.port, "-k", self.folder,
                                "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=400", "-c", "fsync=off"],
                               log=self.folder / "postgres.log", lifetime=self.lifetime)
        for _ in range(300):
            if subprocess.run([pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"]).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("PostgreSQL did not start:\n" + self.process.output()[-3000:])

    def postmaster(self):
        return int((self.folder / "data" / "postmaster.pid").read_text().split()[0])

    def crash(self):
        """Immediate shutdown (SIGQUIT): every backend ends at once, recovery runs at the next start."""
        os.kill(self.postmaster(), signal.SIGQUIT)
        self.process.process.wait(timeout=30)

    def stop(self):
        try:
            os.kill(self.postmaster(), signal.SIGINT)
        except (OSError, ValueError):
            pass
        self.process.stop()


class Redis:
    def __init__(self, folder: Path, lifetime: int):
        self.folder, self.lifetime, self.port = folder, lifetime, free_port()
        self.start()

    def start(self):
        self.process = Process(["redis-server", "--port", self.port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                               log=self.folder / "redis.log", lifetime=self.lifetime)
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("Redis did not start")

    def restart(self):
        sigkill(self.process)
        self.start()


def run(seconds: int, work: Path, say=print) -> dict:
    lifetime = seconds + 900
    work.mkdir(parents=True, exist_ok=True)
    # PostgreSQL runs as its own user when we are root: its folder is one that user can reach
    # (test folders are private to root), removed at the end.
    pg_folder = Path(tempfile.mkdtemp(prefix="circle-chaos-pg-"))
    pg_folder.chmod(0o755)
    postgres = Postgres(pg_folder / "pg", lifetime)
    redis = Redis(work, lifetime)
    env = {
        "POSTGRES_URL": postgres.url, "REDIS_URL": f"redis://127.0.0.1:{redis.port}", "POSTGRES_POOL_SIZE": "8",
        "AUTH_PEPPER": base64.b64encode(os.urandom(32)).decode(),
        "ACTIVITY_KEYS": "c1:" + base64.b64encode(os.urandom(32)).decode(),
        "VAULT_PATH": str(work / "vault"), "LOG_LEVEL": "warning", "AUTH_REGISTRATION": "open",
        "LIMITS_RATES": "register=1000000/1h,prelogin=1000000/1m",
    }
    migrate = subprocess.run([executable("circle"), "migrate"], env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    replicas = {}  # name -> [service, port, process]
    started = []

    def start(name):
        service, port, _ = replicas[name]
        process = Process([executable(f"circle-{service}"), "--http-port", port], log=work / f"{name}.log", env=env, lifetime=lifetime)
        replicas[name][2] = process
        started.append(process)
        wait_ready(f"http://127.0.0.1:{port}/readyz", process)

    bench = None
    front = None
    try:
        for service in SERVICES:
            for index in range(REPLICAS):
                name = f"{service}-{index + 1}"
                replicas[name] = [service, free_port(), None]
                start(name)
        nginx_port = free_port()
        (work / "logs").mkdir(exist_ok=True)
        pools = {service: [port for (owner, port, _) in replicas.values() if owner == service] for service in SERVICES}
        config = nginx_config(work, nginx_port, pools)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        front = Process([nginx, "-p", work, "-c", config, "-g", f"pid {work}/nginx.pid; daemon off;"], log=work / "nginx.log",
                        lifetime=lifetime)
        wait_ready(f"http://127.0.0.1:{nginx_port}/nginx-health", front)
        say(f"topology up: {len(replicas)} replicas behind nginx on {nginx_port}, PostgreSQL {postgres.port}, Redis {redis.port}")

        faults = work / "faults"
        faults.write_text("")
        report = work / "report.json"
        bench = Process([executable("circle-bench"), "chaos", "--url", f"http://127.0.0.1:{nginx_port}", "--seconds", seconds,
                         "--faults", faults, "--report", report], log=work / "bench.log", lifetime=lifetime)
        deadline = time.monotonic() + 300
        while not (work / "ready").exists():
            assert bench.running, "the chaos clients stopped before the load:\n" + bench.output()[-3000:]
            assert time.monotonic() < deadline, "the chaos clients were not ready within 300 s:\n" + bench.output()[-3000:]
            time.sleep(0.2)
        say(bench.output().strip().splitlines()[-1])

        # The schedule, in seconds after the load starts: a kill every 20 s, Redis twice, PostgreSQL twice.
        plan = [(at, "kill") for at in range(KILL_EVERY // 2, seconds, KILL_EVERY)]
        plan += [(round(seconds * 0.25) + 5, "redis"), (round(seconds * 0.6) + 5, "redis"),
                 (round(seconds * 0.4) + 4, "postgres"), (round(seconds * 0.8) + 4, "postgres")]
        plan.sort()
        begin = time.monotonic()
        crashed_on_their_own = []
        for at, what in plan:
            while time.monotonic() - begin < at:
                for name, (_, _, process) in replicas.items():
                    if not process.running:
                        crashed_on_their_own.append(f"{name}: {process.output()[-500:]}")
                        start(name)
                time.sleep(0.2)
            stamp = int(time.time() * 1000)
            if what == "kill":
                name = random.choice(sorted(replicas))
                sigkill(replicas[name][2])
                detail = f"SIGKILL {name}"
                start(name)
            elif what == "redis":
                redis.restart()
                detail = "Redis restarted"
            else:
                postgres.crash()
                postgres.start()
                detail = "PostgreSQL crashed and restarted"
            with faults.open("a") as out:
                out.write(f"{stamp} {detail}\n")
            say(f"t+{at:>4} s  {detail} (back in {int(time.time() * 1000) - stamp} ms)")

        bench.process.wait(timeout=lifetime)
        say(bench.output().strip())
        result = json.loads(report.read_text()) if report.exists() else {}
        result["exitCode"] = bench.process.returncode
        result["servicesCrashedOnTheirOwn"] = crashed_on_their_own
        return result
    finally:
        for process in [bench, front, *started]:
            if process is not None:
                process.stop()
        redis.process.stop()
        postgres.stop()
        shutil.copy(postgres.folder / "postgres.log", work / "postgres.log")
        shutil.rmtree(pg_folder, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=600, help="seconds of load under faults (default 600)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, report) after a run that passed")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="circle-chaos-"))
    result = run(arguments.seconds, work)
    print(json.dumps({key: value for key, value in result.items() if key not in ("undelivered", "missingOnRead")}, indent=2))
    passed = result.get("exitCode") == 0 and not result.get("servicesCrashedOnTheirOwn")
    if passed and not arguments.keep:
        shutil.rmtree(work, ignore_errors=True)
        print("chaos run passed")
    else:
        print(f"chaos run {'passed' if passed else 'FAILED'}; logs and report in {work}")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
