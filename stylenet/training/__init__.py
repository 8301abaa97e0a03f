"""Training a network: the loop (`loop`), resumable snapshots (`snapshots`), TensorBoard (`monitor`) and the
health alarms (`health`)."""
