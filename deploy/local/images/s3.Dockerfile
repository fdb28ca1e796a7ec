# The local S3-compatible server (moto, with deploy/local/moto-s3.py's SigV4 canonicalisation)
# on the locally made base, for deploy/local/compose-test.sh: the compose file passes
# `-H 0.0.0.0 -p 9000` as motoserver/moto's image takes them. Its Python packages come from
# deploy/local/images/wheels, which compose-test.sh fills with the host's pip (pip download),
# so the build needs no index of its own.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
COPY deploy/local/images/wheels /tmp/wheels
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-pip \
 && python3 -m pip install -q --no-cache-dir --no-index --find-links /tmp/wheels --break-system-packages 'moto[server]>=5,<6' boto3 \
 && apt-get purge -y python3-pip && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* /tmp/wheels
COPY deploy/local/moto-s3.py /usr/local/lib/moto-s3.py
COPY deploy/local/images/s3-entrypoint.sh /usr/local/bin/s3-entrypoint
EXPOSE 9000
ENTRYPOINT ["/usr/local/bin/s3-entrypoint"]
