"""Running TorchServe: its config, its process, its key file. The only module that knows
TorchServe's start/stop mechanics; everything else talks to it over HTTP/gRPC."""
