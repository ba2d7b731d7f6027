"""Local stand-ins for the cloud: the fake Encord API server and the moto-backed stack."""
