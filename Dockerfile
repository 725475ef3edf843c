# Bulwark's container image: built with the .NET SDK, run on the ASP.NET Core runtime as a non-root
# user with a read-only root filesystem (everything Bulwark writes goes to the /data volume).
#
#   docker build -t bulwark:local .
#   docker run --read-only --tmpfs /tmp -v bulwark-data:/data -p 8000:8000 bulwark:local
#
# No secret is baked in: the HMAC secret, the metrics token and connection strings come from the
# environment at run time (deploy/compose, deploy/kubernetes). The base images are arguments only so
# that deploy/docker/verify-image.sh can build on a machine that cannot pull them; leave them as they are.
ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0
ARG RUNTIME_IMAGE=mcr.microsoft.com/dotnet/aspnet:10.0

FROM ${SDK_IMAGE} AS build
WORKDIR /src
# Restore first, from the project files alone, so the layer is reused while only code changes.
COPY global.json Directory.Build.props Directory.Packages.props ./
COPY src/Bulwark.Engine/Bulwark.Engine.csproj src/Bulwark.Engine/
COPY src/Bulwark.Server/Bulwark.Server.csproj src/Bulwark.Server/
COPY src/Bulwark.Cli/Bulwark.Cli.csproj src/Bulwark.Cli/
RUN dotnet restore src/Bulwark.Cli/Bulwark.Cli.csproj
COPY src/ src/
RUN dotnet publish src/Bulwark.Cli/Bulwark.Cli.csproj -c Release --no-restore -o /out -p:UseAppHost=true \
 && rm -f /out/*.pdb

FROM ${RUNTIME_IMAGE} AS runtime
# APP_UID (1654, user "app") is the non-root user the official .NET images define.
ARG APP_UID=1654
# MALLOC_ARENA_MAX: glibc reads it when the process starts, so the runtime's own threads share 2 malloc arenas
# instead of up to 8 per core (serve's Bulwark:Memory:MallocArenaMax can only stop new ones; docs/reliability.md).
ENV BULWARK_DATA_DIR=/data \
    MALLOC_ARENA_MAX=2 \
    Bulwark__Server__Host=0.0.0.0 \
    Bulwark__Server__Port=8000 \
    DOTNET_NOLOGO=1 \
    PATH=/app:$PATH
# Owned by root and not writable by the server: only /data is.
COPY --from=build /out /app
RUN mkdir -p /data && chown "$APP_UID" /data && chmod 0700 /data
VOLUME ["/data"]
WORKDIR /app
USER $APP_UID
EXPOSE 8000
# /health answers "ok" without a key. bash's /dev/tcp, because the runtime image has no curl; plain
# HTTP only (with Bulwark:Tls set, probe from outside instead, as the Kubernetes manifests do).
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${Bulwark__Server__Port} && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -c 16 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/app/bulwark"]
CMD ["serve"]
