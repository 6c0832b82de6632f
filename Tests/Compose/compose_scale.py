"""podman-compose with a `scale` command, which podman-compose 1.0 lacks (its `--scale` is parsed
and ignored, and `up` with a changed replica count takes the whole project down first).

    python3 compose_scale.py -p PROJECT -f compose.yaml [-f ...] scale SERVICE

makes SERVICE's running replicas match `deploy.replicas` in the given files, as
`docker compose up -d --scale SERVICE=N --no-recreate` does: the missing ones are started with the
very arguments podman-compose's own `up` gives them, and the highest-numbered extra ones are
stopped (SIGTERM, 10 s) and removed.
"""
import subprocess

import podman_compose as pc


@pc.cmd_run(pc.podman_compose, "scale", "start or stop replicas of one service to match deploy.replicas")
def compose_scale(compose, args):
    wanted = {cnt["name"] for cnt in compose.containers if cnt["_service"] == args.service}
    if not wanted:
        raise SystemExit(f"no service named {args.service}")
    running = subprocess.run(
        ["podman", "ps", "-a", "--format", "{{.Names}}",
         "--filter", f"label=io.podman.compose.project={compose.project_name}",
         "--filter", f"label=com.docker.compose.service={args.service}"],
        capture_output=True, text=True, check=True).stdout.split()
    for cnt in compose.containers:
        if cnt["name"] in wanted and cnt["name"] not in running:
            compose.podman.run([], "run", pc.container_to_args(compose, cnt, detached=True))
    extra = sorted(set(running) - wanted, key=lambda name: int(name.rsplit("_", 1)[1]), reverse=True)
    for name in extra:
        compose.podman.run([], "stop", ["-t", "10", name])
        compose.podman.run([], "rm", [name])


@pc.cmd_parse(pc.podman_compose, "scale")
def compose_scale_parse(parser):
    parser.add_argument("service", help="the service to scale")


if __name__ == "__main__":
    pc.main()
