# One image for both roles: `dotnet /app/disttrain.dll train …` (coordinator) or `dotnet /app/DistTrain.Worker.dll`
# (worker), chosen by the container's command (see docker-compose.yml). Built by the SDK, run on the ASP.NET runtime.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
# Project files first, so the restore layer is reused until a dependency changes.
COPY Directory.Build.props Directory.Packages.props ./
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

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build /app ./
COPY examples/ ./examples/
# Owned by the unprivileged user, so a fresh named volume mounted here is writable for checkpoints.
RUN mkdir -p /checkpoints && chown "$APP_UID" /checkpoints
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 \
    DOTNET_NOLOGO=1
# APP_UID is the non-root `app` user the .NET images define.
USER $APP_UID
# 5100 coordinator gRPC, 5101 worker gRPC, 8080 dashboard.
EXPOSE 5100 5101 8080
CMD ["dotnet", "/app/disttrain.dll", "--help"]
