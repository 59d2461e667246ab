# Production image: Python 3.13 slim (audioop comes from audioop-lts there), non-root.
FROM python:3.13-slim AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY control_plane ./control_plane
COPY bench ./bench
COPY callagent ./callagent
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.13-slim
# tzdata: the system zone database, for TZ= and for zoneinfo (calling windows) to read before the
# tzdata wheel, so a rebuilt image picks up Debian's zone updates.
RUN apt-get update && apt-get install -y --no-install-recommends tzdata && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 callagent \
    && mkdir -p /home/callagent/data && chown callagent:callagent /home/callagent/data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER callagent
WORKDIR /home/callagent
# The embedded SQLite store and its generated keys.json live here: keep them on a volume, or a
# new container starts with an empty store and keys that cannot read an old one. (With
# DATABASE_URL and the keys in the environment nothing here needs keeping.)
VOLUME ["/home/callagent/data"]
ENV CALLAGENT_SERVER__HOST=0.0.0.0 \
    CALLAGENT_SERVER__PORT=8080 \
    CALLAGENT_DATA_DIR=/home/callagent/data \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
ENTRYPOINT ["callagent"]
CMD ["serve"]
