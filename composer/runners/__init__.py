"""Running a pipeline's containers on this machine, each as SageMaker would run it.

- contract.py: what a runner hands the endpoint lifecycle (`Runner`, `Prepared`) and what every
  runner gives a container (port, environment, model folder, working folder);
- process.py: `ProcessRunner`, the default: each container's `serve` as a local process;
- oci.py: `EngineRunner`: each container's image under Podman or Docker (engine.py drives them);
- endpoint.py: the endpoint lifecycle: `running_endpoint`, `serve_until_stopped`,
  `gateway_config`;
- supervisor.py: one container's process: started, logged, pinged, restarted, stopped;
- envs.py, modeldata.py, multimodel.py: cached Python environments (built with uv, at once),
  model archives, and a multi-model container's models on first use;
- pipconfig.py: pip's configuration (files, PIP_*) as uv's options.
"""
