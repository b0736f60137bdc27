"""Service images built and run without a Docker engine or a registry: podman, and a base image
made from Debian's own packages (docs/deploy.md, "Images")."""
