"""Deployment files (images, compose, Kubernetes, monitoring); ``deploy.e2e`` runs the compose
stack for real (``make test-deploy``)."""
