"""The kubernetes driver: Deployments, Services and HPAs through the official client."""
