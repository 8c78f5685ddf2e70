"""Deployment files (docker-compose.yml's proxy config, the container health probe) and the local split runner."""
