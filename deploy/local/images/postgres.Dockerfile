# PostgreSQL 15 from Debian 12 on the locally made base, behaving as the compose file expects
# of postgres:15-bookworm: POSTGRES_PASSWORD, data in /var/lib/postgresql/data, pg_isready.
# For deploy/local/compose-test.sh, where no registry is reachable.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/local/images/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PGDATA=/var/lib/postgresql/data
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
