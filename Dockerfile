# One image for both roles: `dotnet /app/disttrain.dll train …` (coordinator) or `dotnet /app/DistTrain.Worker.dll`
# (worker), chosen by the container's command (see docker-compose.yml). Built by the SDK, run on the ASP.NET runtime.
# Both base images are build arguments, for mirrors and machines that cannot pull; where the SDK image cannot be
# had at all, `--target runtime-base` plus Dockerfile.published package programs published on the host.
ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0
ARG RUNTIME_IMAGE=mcr.microsoft.com/dotnet/aspnet:10.0

# Everything of the runtime image but the programs. It comes first: building it as the target never touches the
# SDK stage, even with the classic builder (which builds every stage before the target).
FROM ${RUNTIME_IMAGE} AS runtime-base
WORKDIR /app
COPY examples/ ./examples/
# Owned by the unprivileged user, so a fresh named volume mounted here is writable for checkpoints.
RUN mkdir -p /checkpoints && chown "$APP_UID" /checkpoints
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 \
    DOTNET_NOLOGO=1
# APP_UID is the non-root `app` user the .NET images define.
USER $APP_UID
# 5100 coordinator gRPC, 5101 worker gRPC, 5102 coordinator TCP step link, 8080 dashboard.
EXPOSE 5100 5101 5102 8080
CMD ["dotnet", "/app/disttrain.dll", "--help"]

FROM ${SDK_IMAGE} AS build
WORKDIR /src
# Project files first, so the restore layer is reused until a dependency changes.
COPY Directory.Build.props Directory.Build.targets Directory.Packages.props ./
COPY core/DistTrain.Core.csproj core/
COPY protos/DistTrain.Protos.csproj protos/
COPY worker/DistTrain.Worker.csproj worker/
COPY coordinator/DistTrain.Coordinator.csproj coordinator/
RUN dotnet restore coordinator/DistTrain.Coordinator.csproj
COPY core/ core/
COPY protos/ protos/
COPY worker/ worker/
COPY coordinator/ coordinator/
RUN dotnet publish coordinator/DistTrain.Coordinator.csproj -c Release --no-restore -o /app \
 && dotnet publish worker/DistTrain.Worker.csproj -c Release --no-restore -o /app

FROM runtime-base AS runtime
COPY --from=build /app ./
