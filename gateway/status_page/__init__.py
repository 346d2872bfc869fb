"""The live status page (``GET /`` on the admin listener) and the JSON it polls."""
