# Debian's coturn, the same package `make test` runs Circle's TURN credentials against. compose
# mounts deploy/turnserver.conf at /etc/turnserver.conf and adds the secret at start.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends coturn \
    && rm -rf /var/lib/apt/lists/*
# The package's own unprivileged user; TURN's ports are all above 1024.
USER turnserver
CMD ["turnserver", "-c", "/etc/turnserver.conf"]
